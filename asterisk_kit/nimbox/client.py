"""NiMbox "direct" phone-call web service: create and delete, with every answer sorted into one of
four outcomes the callers act on:

  CREATED    {"error": false, "contactId": .., "phonecallId": ..}
  EXISTS     the call (initiated, source, destination) is already there: done, nothing to do
  REJECTED   {"error": true, "errors": {field: message}} about the call itself, e.g. an unknown
             destination: permanent, logged, never retried in a loop
  TEMPORARY  network trouble, timeout, HTTP 5xx, a token refused, an answer that is not the
             documented JSON: the call stays in the outbox and is retried by the next sync

Two transports share that logic: a requests.Session (keep-alive, the sync, one per worker thread)
and a bare HTTP/1.0 exchange over a socket for the hangup hook, which must not pay the import
time of requests (or even http.client).

[U] NiMbox documents neither the body of a duplicate nor the HTTP status of errors. An error whose
messages speak of an existing/duplicate call (English or Spanish, NiMbox is Spanish) is EXISTS; an
error on `token` is TEMPORARY (a configuration problem: nothing is lost while it is fixed).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional
from urllib.parse import urlencode, urlsplit

CREATE_PATH = "/direct/items/phonecalls/create"
DELETE_PATH = "/direct/items/phonecalls/delete"

CREATED, EXISTS, REJECTED, TEMPORARY = "created", "exists", "rejected", "temporary"

# Positive phrases only: "No existe ningún contacto" (unknown destination) must not read as a duplicate.
_DUPLICATE_RE = re.compile(r"\bya existe|already exists?|duplica|repetid|ya (?:fue|ha sido) (?:creada|registrada)", re.I)


@dataclass
class Outcome:
    kind: str                 # CREATED, EXISTS, REJECTED, TEMPORARY
    detail: str = ""
    auth: bool = False        # the token was refused: every further request would fail too
    phonecall_id: Optional[int] = None

    @property
    def done(self) -> bool:
        """Nothing more to do for this call (it is in NiMbox, or NiMbox will never take it)."""
        return self.kind in (CREATED, EXISTS, REJECTED)


def classify(status: int, body: bytes) -> Outcome:
    """Sort one create answer (HTTP status and body) into an Outcome."""
    if status in (401, 403):
        return Outcome(TEMPORARY, f"HTTP {status}: token refused", auth=True)
    if status >= 500 or status in (408, 429):
        return Outcome(TEMPORARY, f"HTTP {status}")
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return Outcome(TEMPORARY, f"HTTP {status}: not JSON: {body[:120]!r}")
    if not isinstance(data, dict) or "error" not in data:
        return Outcome(TEMPORARY, f"HTTP {status}: unexpected answer {str(data)[:120]}")
    if data["error"] is False:
        if status >= 400:
            return Outcome(TEMPORARY, f"HTTP {status} with a success body")
        pid = data.get("phonecallId")
        return Outcome(CREATED, f"phonecallId {pid}", phonecall_id=pid if isinstance(pid, int) else None)
    errors = data.get("errors")
    if not isinstance(errors, dict) or not errors:
        return Outcome(TEMPORARY, f"HTTP {status}: error without details")
    text = "; ".join(f"{k}: {v}" for k, v in errors.items())[:300]
    if "token" in errors:
        return Outcome(TEMPORARY, text, auth=True)
    if any(_DUPLICATE_RE.search(str(v)) for v in errors.values()):
        return Outcome(EXISTS, text)
    return Outcome(REJECTED, text)


class NimboxError(Exception):
    """A delete failed (the create path never raises: it returns an Outcome)."""


def _split_base(url: str):
    u = urlsplit(url)
    return u.scheme, u.hostname or "", u.port, u.path.rstrip("/")


def send_once(base_url: str, token: str, params: Dict[str, str], timeout: float) -> Outcome:
    """One create for the hangup hook, never raises. A plain HTTP/1.0 GET over a socket: http.client
    alone (it pulls the email package) costs the hook ~40 ms of imports on every call. TIMEOUT bounds
    the whole exchange (connect, send, every read until the deadline), not each step."""
    import socket
    import time
    scheme, host, port, path = _split_base(base_url)
    port = port or (443 if scheme == "https" else 80)
    query = urlencode({"token": token, **params})
    request = (f"GET {path}{CREATE_PATH}?{query} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n"
               f"User-Agent: asterisk-kit\r\nConnection: close\r\n\r\n").encode("ascii")
    deadline = time.monotonic() + timeout
    sock = None
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        if scheme == "https":
            import ssl
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        sock.sendall(request)
        chunks = []
        size = 0
        while size < (1 << 20):
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
            size += len(data)
        raw = b"".join(chunks)
    except OSError as e:   # refused, reset, timeout (socket.timeout is an OSError), TLS errors
        return Outcome(TEMPORARY, f"{type(e).__name__}: {e}")
    finally:
        if sock is not None:
            sock.close()
    head, sep, body = raw.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if not sep or not m:
        return Outcome(TEMPORARY, f"not an HTTP answer: {raw[:80]!r}")
    return classify(int(m.group(1)), body)


class NimboxClient:
    """requests-based client with a keep-alive Session (one per thread: Session is not thread-safe)."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0, session=None):
        import requests
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._requests = requests
        self.session = session or requests.Session()

    @classmethod
    def from_config(cls, cfg, **kw) -> "NimboxClient":
        n = cfg["nimbox"]
        return cls(n["url"], n["token"], timeout=kw.pop("timeout", n["timeout"]), **kw)

    def close(self) -> None:
        self.session.close()

    def create(self, params: Dict[str, str]) -> Outcome:
        try:
            r = self.session.get(self.base_url + CREATE_PATH, params={"token": self.token, **params},
                                 timeout=self.timeout, headers={"Accept": "application/json"})
        except self._requests.RequestException as e:
            return Outcome(TEMPORARY, f"{type(e).__name__}: {e}")
        return classify(r.status_code, r.content)

    def delete(self, first_day, last_day) -> int:
        """Delete the calls of FIRST_DAY..LAST_DAY inclusive (dates). NiMbox's `from` and `to` are
        both exclusive, so the request asks for the day before and the day after. Returns the count."""
        import datetime as dt
        params = {"token": self.token, "from": (first_day - dt.timedelta(days=1)).isoformat(),
                  "to": (last_day + dt.timedelta(days=1)).isoformat()}
        try:
            r = self.session.get(self.base_url + DELETE_PATH, params=params, timeout=self.timeout)
        except self._requests.RequestException as e:
            raise NimboxError(f"delete: {type(e).__name__}: {e}") from None
        try:
            data: Any = r.json()
        except ValueError:
            raise NimboxError(f"delete: HTTP {r.status_code}, not JSON: {r.text[:120]!r}") from None
        if r.status_code >= 400 or not isinstance(data, dict) or data.get("error") is not False:
            raise NimboxError(f"delete refused: HTTP {r.status_code} {str(data)[:200]}")
        return int(data.get("count") or 0)
