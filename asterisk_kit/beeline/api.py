"""Beeline cloud PBX portal API client (requests): list records after a cursor, one record, the mp3.

The HTTP status of a bad token or a missing record is not documented, so errors are classified by
status AND body: 401/403 or an errorCode about the token/auth -> AuthError; 404, or a 400 whose
errorCode/description names the record -> RecordError; 5xx, 429, timeouts and dropped connections
-> TransientError (retried here with growing pauses, then raised). A download is only accepted as
audio when the status is 200, the Content-Type is not JSON/HTML/text and every announced byte
arrived; it is streamed to a file in 1 MiB chunks, never held in memory.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Callable, List, Optional

import requests

log = logging.getLogger("asterisk_kit.beeline.api")

TOKEN_HEADER = "X-MPBX-API-AUTH-TOKEN"
PAGE_SIZE = 100            # the API's maximum per records? answer [I]
CHUNK = 1 << 20
MAX_RETRY_AFTER = 120.0    # a Retry-After longer than this is not waited for in one run


class BeelineError(Exception):
    """Any failure talking to the API; `kind` says which (auth, record, transient, bad_response)."""
    kind = "error"
    retry_after: Optional[float] = None     # seconds, from a 429's Retry-After

    def __init__(self, message: str, status: Optional[int] = None, code: str = ""):
        self.status, self.code = status, code
        super().__init__(message)


class AuthError(BeelineError):
    kind = "auth"


class RecordError(BeelineError):
    """This record cannot be had (missing, or its audio is not audio)."""
    kind = "record"


class TransientError(BeelineError):
    kind = "transient"


class BadResponse(BeelineError):
    kind = "bad_response"


def _error_text(r: requests.Response) -> tuple:
    """(errorCode, description) from a JSON error body, either documented shape; else ("", text)."""
    try:
        body = r.json()
    except ValueError:
        return "", (r.text or "")[:200].strip()
    if isinstance(body, dict):
        code = str(body.get("errorCode") or body.get("error") or "")
        desc = str(body.get("description") or body.get("message") or "")
        return code, desc
    return "", str(body)[:200]


def classify(r: requests.Response, what: str) -> BeelineError:
    code, desc = _error_text(r)
    detail = f"HTTP {r.status_code}" + (f" {code}" if code else "") + (f": {desc}" if desc else "")
    low = f"{code} {desc}".lower()
    if r.status_code in (401, 403) or "token" in low or "auth" in low:
        return AuthError(f"{what}: token refused ({detail}); check the section's token", r.status_code, code)
    if r.status_code == 429 or r.status_code >= 500:
        return TransientError(f"{what}: {detail}", r.status_code, code)
    if r.status_code in (404, 410) or (r.status_code == 400 and ("record" in low or "found" in low)):
        return RecordError(f"{what}: {detail}", r.status_code, code)
    return BadResponse(f"{what}: {detail}", r.status_code, code)


def _retry_after(r: requests.Response) -> Optional[float]:
    v = r.headers.get("Retry-After", "")
    try:
        return min(max(float(v), 0.0), MAX_RETRY_AFTER) if v else None
    except ValueError:
        return None


class BeelineClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0, retries: int = 3,
                 retry_pause: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                 session: Optional[requests.Session] = None):
        self.base = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.retries, self.retry_pause = retries, retry_pause
        self._sleep = sleep
        self._session = session or requests.Session()
        self._session.headers[TOKEN_HEADER] = token
        self.requests_made = 0
        self.last_raw_count = 0

    @classmethod
    def from_section(cls, c: dict, **kw) -> "BeelineClient":
        return cls(c["api_url"], c["token"], timeout=c["request_timeout"], retries=c["retries"],
                   retry_pause=c["retry_pause"], **kw)

    def close(self) -> None:
        self._session.close()

    # ---- transport ---------------------------------------------------------------------------

    def _with_retries(self, what: str, attempt: Callable[[], object]):
        pause = self.retry_pause
        for n in range(self.retries + 1):
            try:
                return attempt()
            except TransientError as e:
                if n == self.retries:
                    raise
                wait = pause
                if e.status == 429 and e.retry_after is not None:
                    wait = max(wait, e.retry_after)
                log.warning("%s (attempt %d of %d); retrying in %.1f s", e, n + 1, self.retries + 1, wait)
                self._sleep(wait)
                pause *= 2
        raise AssertionError("unreachable")

    def _get(self, path: str, what: str, params: Optional[dict] = None, stream: bool = False):
        self.requests_made += 1
        try:
            r = self._session.get(self.base + path, params=params, timeout=self.timeout, stream=stream)
        except requests.Timeout as e:
            raise TransientError(f"{what}: no answer within {self.timeout:g} s ({type(e).__name__})") from None
        except requests.RequestException as e:
            raise TransientError(f"{what}: {type(e).__name__}: {e}") from None
        if r.status_code != 200:
            try:
                err = classify(r, what)
                err.retry_after = _retry_after(r)
            finally:
                r.close()
            raise err
        return r

    def _json(self, path: str, what: str, params: Optional[dict] = None):
        def attempt():
            r = self._get(path, what, params)
            try:
                return r.json()
            except ValueError:
                raise BadResponse(f"{what}: answer is not JSON: {r.text[:120]!r}", r.status_code) from None
            except requests.RequestException as e:   # body cut while reading
                raise TransientError(f"{what}: {type(e).__name__}: {e}") from None
        return self._with_retries(what, attempt)

    # ---- endpoints ---------------------------------------------------------------------------

    def records_after(self, after_id: str) -> List[dict]:
        """One page (<= 100) of records with id > after_id, ascending numerically.

        Sorted and filtered here as well: the API's ordering and exclusivity are [I], and a record
        at or below the cursor must never be exported twice."""
        params = {"id": after_id} if after_id else {}
        body = self._json("records", f"list records after id {after_id or '(start)'}", params)
        if isinstance(body, dict) and "errorCode" in body:
            raise BadResponse(f"list records: {body.get('errorCode')}: {body.get('description')}")
        if not isinstance(body, list):
            raise BadResponse(f"list records: expected a JSON list, got {type(body).__name__}")
        self.last_raw_count = len(body)     # a full page (100) means: ask again
        floor = int(after_id) if after_id else -1
        out = []
        for item in body:
            rid = str(item.get("id", "")) if isinstance(item, dict) else ""
            if not rid.isdigit():
                raise BadResponse(f"list records: item without a numeric id: {str(item)[:120]}")
            if int(rid) > floor:
                out.append(item)
        out.sort(key=lambda it: int(it["id"]))
        return out

    def record(self, rid: str) -> dict:
        body = self._json(f"v2/records/{_rid(rid)}", f"record {rid}")
        if not isinstance(body, dict) or str(body.get("id", "")) != rid:
            if isinstance(body, dict) and "errorCode" in body:
                raise RecordError(f"record {rid}: {body.get('errorCode')}: {body.get('description')}")
            raise BadResponse(f"record {rid}: unexpected answer {str(body)[:120]}")
        return body

    def download(self, rid: str, dest: str) -> int:
        """Stream the audio of RID into file DEST (overwritten); returns its size in bytes."""
        what = f"download of record {rid}"

        def attempt():
            r = self._get(f"v2/records/{_rid(rid)}/download", what, stream=True)
            try:
                ctype = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype in ("application/json", "text/html", "text/plain", "text/xml", "application/xml") \
                        or ctype.endswith("+json"):
                    head = r.raw.read(4096, decode_content=True)
                    try:
                        err = json.loads(head)
                        msg = (f"{err.get('errorCode')}: {err.get('description')}" if isinstance(err, dict)
                               else head[:200])
                    except ValueError:
                        msg = head[:200].decode(errors="replace")
                    low = str(msg).lower()
                    if "token" in low or "auth" in low:
                        raise AuthError(f"{what}: token refused ({msg})")
                    raise RecordError(f"{what}: answered {ctype} instead of audio: {msg}")
                expected = r.headers.get("Content-Length")
                size = 0
                with open(dest, "wb") as f:
                    try:
                        for chunk in r.iter_content(CHUNK):
                            if size == 0 and _looks_like_error(chunk):
                                raise RecordError(f"{what}: answered a JSON error body as {ctype or 'untyped'} "
                                                  f"data: {chunk[:200].decode(errors='replace')}")
                            f.write(chunk)
                            size += len(chunk)
                    except requests.RequestException as e:
                        raise TransientError(f"{what}: transfer broke after {size} bytes: {type(e).__name__}") from None
                    # No fsync: a later run never trusts this file, it downloads again.
                if expected is not None and expected.isdigit() and int(expected) != size:
                    raise TransientError(f"{what}: got {size} of {expected} bytes")
                if size == 0:
                    raise RecordError(f"{what}: empty audio")
                return size
            finally:
                r.close()
        return self._with_retries(what, attempt)


def _looks_like_error(head: bytes) -> bool:
    # Whatever the Content-Type says: an mp3 starts with "ID3" or a frame sync, never with a JSON
    # object naming an error.
    h = head[:4096].lstrip()
    return h.startswith(b"{") and (b'"errorCode"' in h or b'"error"' in h)


def _rid(rid: str) -> str:
    # Ids go into URL paths and file names: digits only (allow-list).
    if not rid.isdigit():
        raise BadResponse(f"record id {rid!r} is not a string of digits")
    return rid
