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
_DUPLICATE_RE = re.compile(r"\bya existe|already exists?|duplica|repetid|ya (?:fue|ha sido) (?:creada|registrada)",
                           re.I)


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


_TOKEN_PARAM_RE = re.compile(r"(token=)[^&\s'\"<>]*", re.I)


def redact(text: str, token: str) -> str:
    """TEXT without the API token: the token travels in the query string, and requests' exception
    text (or an error page echoing the request) carries the whole URL into logs and the store."""
    from urllib.parse import quote, quote_plus
    if token:
        for form in {token, quote(token, safe=""), quote_plus(token)}:
            text = text.replace(form, "***")
    return _TOKEN_PARAM_RE.sub(r"\1***", text)


def _resolve(host: str, port: int, timeout: float):
    """getaddrinfo bounded by TIMEOUT: the resolver has no timeout of its own we control (a dead DNS
    server costs 5 s per try), and the hook must stay within hook_timeout. The lookup runs in a
    daemon thread left to finish on its own when it is too slow."""
    import socket
    import threading
    box: list = []

    def lookup():
        try:
            box.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except Exception as e:   # gaierror, UnicodeError (an impossible name)
            box.append(e)
    t = threading.Thread(target=lookup, name="nimbox-dns", daemon=True)
    t.start()
    t.join(max(timeout, 0.0))
    if not box:
        raise TimeoutError(f"DNS lookup of {host} took longer than {timeout:.2f} s")
    if isinstance(box[0], Exception):
        raise OSError(f"DNS lookup of {host} failed: {box[0]}")
    return box[0]


class NimboxError(Exception):
    """A delete failed (the create path never raises: it returns an Outcome)."""


def _split_base(url: str):
    u = urlsplit(url)
    return u.scheme, u.hostname or "", u.port, u.path.rstrip("/")


def send_once(base_url: str, token: str, params: Dict[str, str], timeout: float) -> Outcome:
    """One create for the hangup hook, never raises. A plain HTTP/1.0 GET over a socket: http.client
    alone (it pulls the email package) costs the hook ~40 ms of imports on every call. TIMEOUT bounds
    the whole exchange (DNS lookup, connect, send, every read until the deadline), not each step."""
    try:
        return _send_once(base_url, token, params, timeout)
    except Exception as e:   # whatever it is, the hook must go on (the call is in the outbox)
        return Outcome(TEMPORARY, redact(f"{type(e).__name__}: {e}", token))


def _send_once(base_url: str, token: str, params: Dict[str, str], timeout: float) -> Outcome:
    import socket
    import time
    deadline = time.monotonic() + timeout
    scheme, host, port, path = _split_base(base_url)
    port = port or (443 if scheme == "https" else 80)
    query = urlencode({"token": token, **params})
    request = (f"GET {path}{CREATE_PATH}?{query} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n"
               f"User-Agent: asterisk-kit\r\nConnection: close\r\n\r\n").encode("ascii")
    sock = None
    try:
        family, stype, proto, _, addr = _resolve(host, port, deadline - time.monotonic())[0]
        sock = socket.socket(family, stype, proto)
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        sock.connect(addr)
        if scheme == "https":
            import ssl
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
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
    except OSError as e:   # refused, reset, timeout (socket.timeout is an OSError), DNS, TLS errors
        return Outcome(TEMPORARY, redact(f"{type(e).__name__}: {e}", token))
    finally:
        if sock is not None:
            sock.close()
    head, sep, body = raw.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if not sep or not m:
        return Outcome(TEMPORARY, redact(f"not an HTTP answer: {raw[:80]!r}", token))
    res = classify(int(m.group(1)), body)
    res.detail = redact(res.detail, token)
    return res


class NimboxClient:
    """requests-based client with a keep-alive Session (one per thread: Session is not thread-safe)."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0, session=None):
        import logging

        import requests
        # urllib3 logs each request line (the token in its query string) at DEBUG.
        logging.getLogger("urllib3").setLevel(logging.INFO)
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
            return Outcome(TEMPORARY, redact(f"{type(e).__name__}: {e}", self.token))
        res = classify(r.status_code, r.content)
        res.detail = redact(res.detail, self.token)
        return res

    def delete(self, first_day, last_day) -> int:
        """Delete the calls of FIRST_DAY..LAST_DAY inclusive (dates). NiMbox's `from` and `to` are
        both exclusive, so the request asks for the day before and the day after. Returns the count."""
        import datetime as dt
        params = {"token": self.token, "from": (first_day - dt.timedelta(days=1)).isoformat(),
                  "to": (last_day + dt.timedelta(days=1)).isoformat()}
        try:
            r = self.session.get(self.base_url + DELETE_PATH, params=params, timeout=self.timeout)
        except self._requests.RequestException as e:
            raise NimboxError(redact(f"delete: {type(e).__name__}: {e}", self.token)) from None
        try:
            data: Any = r.json()
        except ValueError:
            raise NimboxError(redact(f"delete: HTTP {r.status_code}, not JSON: {r.text[:120]!r}", self.token)) from None
        if r.status_code >= 400 or not isinstance(data, dict) or data.get("error") is not False:
            raise NimboxError(redact(f"delete refused: HTTP {r.status_code} {str(data)[:200]}", self.token))
        return int(data.get("count") or 0)
