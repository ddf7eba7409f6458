"""CoMagic Data API v2.0 client (JSON-RPC 2.0 over HTTPS, requests).

What it takes care of, so the export job does not have to:
- login.user once and reuse the token; on access_token_invalid/_expired log in again ONCE and
  repeat the call; auth_error (wrong login) and a second refusal raise at once, never a loop.
- metadata.limits: when a window's points are used up it sleeps until the reset; -32029
  limit_exceeded makes it wait for the reset and retry; a wait longer than max_rate_wait raises.
- transient failures (connection errors, HTTP 5xx, -32603 internal_error) are retried a few times.
- get.calls_report paging with limit/offset until total_items, iteratively; a range the API refuses
  as too long (date_interval_limit_reached) or holding more rows than offset paging reaches is
  split in halves.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Type

import requests

log = logging.getLogger("asterisk_kit.comagic.api")

TIME_FMT = "%Y-%m-%d %H:%M:%S"
COUNT_LIMIT = 1     # rows asked for by the request that counts a range (metadata.total_items)


class ComagicError(Exception):
    """An error answered by the API (code, mnemonic, field from the error object) or a transport
    failure (code None)."""

    def __init__(self, message: str, code: Optional[int] = None, mnemonic: str = "", field: str = "",
                 data: Optional[dict] = None):
        self.code, self.mnemonic, self.field, self.data = code, mnemonic, field, data or {}
        where = f" (field {field})" if field else ""
        tag = f"{code} {mnemonic}".strip() if code is not None else "transport"
        super().__init__(f"CoMagic API error [{tag}]{where}: {message}")
        self.api_message = message


class AuthError(ComagicError):
    """-32001: bad login or token refused after a fresh login."""


class RateLimitError(ComagicError):
    """-32029, or a limit whose reset is further away than the allowed wait."""


class TransientError(ComagicError):
    """Connection trouble, HTTP 5xx, -32603 internal_error: worth a retry."""


class DateIntervalError(ComagicError):
    """-32602 date_interval_limit_reached: the range is longer than the API accepts."""


class PagingReachError(ComagicError):
    """The range holds more rows than offset paging can reach (an offset refused, or an empty page
    before total_items)."""


_BY_CODE: Dict[object, Type[ComagicError]] = {-32001: AuthError, -32029: RateLimitError, -32603: TransientError}
_TOKEN_EXPIRED = {"access_token_invalid", "access_token_expired"}


def error_from(obj: Any) -> ComagicError:
    if not isinstance(obj, dict):
        return ComagicError(f"malformed error object {obj!r}")
    data = obj.get("data")
    if not isinstance(data, dict):
        data = {}
    code = obj.get("code")
    mnemonic = str(data.get("mnemonic") or "")
    cls = _BY_CODE.get(code, ComagicError)
    if mnemonic == "date_interval_limit_reached":
        cls = DateIntervalError
    return cls(str(obj.get("message") or ""), code=code, mnemonic=mnemonic,
               field=str(data.get("field") or ""), data=data)


def decode_json(raw: bytes) -> Any:
    """JSON from bytes: orjson when installed (the analytics extra; parses a 10 MB page in about a
    third of the standard library's time, which the export spends on every page), else json.
    What orjson refuses (integers beyond 64 bits, NaN) is given to json, so both read the same
    answers; raises ValueError for what neither reads."""
    try:
        import orjson
    except ImportError:
        return json.loads(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _fresher(new: dict, old: dict) -> bool:
    # `old` has had points taken off since; compare the server's own figures.
    a, b = new.get("day_remaining"), old.get("server_day_remaining")
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return True
    return a < b


class ComagicClient:
    def __init__(self, url: str, *, login: str = "", password: str = "", access_token: str = "",
                 timeout: float = 120.0, max_rate_wait: float = 300.0, retries: int = 4,
                 sleep: Callable[[float], None] = time.sleep, session: Optional[requests.Session] = None):
        if not access_token and not (login and password):
            raise ValueError("login and password, or access_token, are required")
        self.url = url
        self._login, self._password = login, password
        self._permanent = bool(access_token)
        self._token = access_token or None
        self.timeout = timeout
        self.max_rate_wait = max_rate_wait
        self.retries = retries
        self._sleep = sleep
        self._session = session or requests.Session()
        self._ids = itertools.count(1)
        self.limits: Dict[str, Any] = {}      # last metadata.limits seen
        self.requests_made = 0
        self.waited_seconds = 0.0
        # Whether date_till is inclusive (undocumented): learnt from the first one-second range that
        # holds calls (see _till); None while unknown.
        self.till_inclusive: Optional[bool] = None
        self._login_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._limits_lock = threading.Lock()
        self._in_flight = 0
        # Two pages in flight can be answered out of order, and the staler answer must not replace the
        # fresher count (seen in CI: it promised a point already spent). day_remaining only falls
        # during a day, so it orders the answers as the server counted them. Requests are numbered as
        # they are sent, to ignore answers to requests sent before a wait for a reset.
        self._sent = 0
        self._limits_from = 0

    @classmethod
    def from_config(cls, cfg, **kw) -> "ComagicClient":
        c = cfg["comagic"]
        return cls(c["api_url"], login=c["login"], password=c["password"], access_token=c["access_token"],
                   timeout=c["request_timeout"], max_rate_wait=c["max_rate_wait_seconds"], **kw)

    def close(self) -> None:
        self._session.close()

    # ---- transport ---------------------------------------------------------------------------

    def _post(self, method: str, params: dict, seq: int = 0) -> dict:
        """One request; returns `result` or raises the typed error."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        with self._count_lock:
            self.requests_made += 1
        try:
            r = self._session.post(self.url, json=body, timeout=self.timeout,
                                   headers={"Content-Type": "application/json; charset=UTF-8"})
        except requests.RequestException as e:
            raise TransientError(f"{method}: {type(e).__name__}: {e}") from None
        if r.status_code >= 500 or r.status_code == 429:
            raise TransientError(f"{method}: HTTP {r.status_code}")
        try:
            answer = decode_json(r.content)  # from bytes: no decoded copy of a 10 MB page
        except ValueError:
            # JSON-RPC errors come with HTTP 200; anything else unparsable is the server's trouble.
            cls = TransientError if r.status_code == 200 else ComagicError
            raise cls(f"{method}: HTTP {r.status_code}, not JSON: {r.text[:200]!r}") from None
        if not isinstance(answer, dict):
            raise ComagicError(f"{method}: unexpected answer {str(answer)[:200]!r}")
        if answer.get("error") is not None:
            raise error_from(answer["error"])
        result = answer.get("result")
        if not isinstance(result, dict):
            raise ComagicError(f"{method}: answer without a result object")
        limits = (result.get("metadata") or {}).get("limits")
        if isinstance(limits, dict):
            with self._limits_lock:
                if seq < self._limits_from or not _fresher(limits, self.limits):
                    return result
                # The answer does not know of the other request still in flight: take its point too.
                others = self._in_flight - 1
                self.limits = dict(limits, seen_at=time.monotonic(), server_day_remaining=limits.get("day_remaining"))
                for which in ("minute", "day"):
                    if isinstance(self.limits.get(f"{which}_remaining"), (int, float)):
                        self.limits[f"{which}_remaining"] -= max(others, 0)
        return result

    def login(self) -> str:
        result = self._post("login.user", {"login": self._login, "password": self._password})
        token = (result.get("data") or {}).get("access_token")
        if not token:
            raise AuthError("login.user answered without an access_token")
        self._token = token
        log.debug("logged in to CoMagic as %s", self._login)
        return token

    def call(self, method: str, params: Optional[dict] = None) -> dict:
        """Call METHOD with the access token added; handles re-login, limits and retries."""
        params = dict(params or {})
        relogged = False
        transient = 0
        limited = 0
        while True:
            if self._token is None:
                with self._login_lock:      # pages are fetched two at a time: one login for both
                    if self._token is None:
                        self.login()
            seq = self._respect_limits()    # counts this request in flight until it is answered
            try:
                try:
                    used = self._token
                    return self._post(method, dict(params, access_token=used), seq)
                finally:
                    with self._limits_lock:
                        self._in_flight -= 1
            except AuthError as e:
                if e.mnemonic in _TOKEN_EXPIRED and not self._permanent and not relogged:
                    log.info("CoMagic token %s; logging in again", e.mnemonic)
                    relogged = True
                    with self._login_lock:
                        if self._token == used:     # not already renewed by the other page in flight
                            self._token = None
                    continue
                raise
            except RateLimitError as e:
                limited += 1
                if limited > 5:
                    raise
                self._wait(self._reset_for(e), f"{e.api_message}")
            except TransientError as e:
                transient += 1
                if transient > self.retries:
                    raise
                delay = min(0.5 * 2 ** (transient - 1), 10.0)
                log.warning("%s; retry %d/%d in %.1f s", e, transient, self.retries, delay)
                self._sleep(delay)

    # ---- limits ------------------------------------------------------------------------------

    def _elapsed(self) -> float:
        return time.monotonic() - self.limits.get("seen_at", time.monotonic())

    def _reset_for(self, e: RateLimitError) -> float:
        """Seconds until the exceeded window resets: from the error's data when it carries limits
        (assumed possible), else from the last metadata.limits seen, else a minute."""
        text = f"{e.api_message} {e.data}".lower()
        which = "day" if "day" in text else "minute"
        src = e.data.get("limits") if isinstance(e.data.get("limits"), dict) else None
        if src and isinstance(src.get(f"{which}_reset"), (int, float)):
            return float(src[f"{which}_reset"])
        if isinstance(self.limits.get(f"{which}_reset"), (int, float)):
            return max(float(self.limits[f"{which}_reset"]) - self._elapsed(), 0.0)
        return 60.0 if which == "minute" else float("inf")

    def _respect_limits(self) -> int:
        # Under a lock, and each request takes its point from the last limits seen: two pages in
        # flight must not both spend the minute's last point.
        with self._limits_lock:
            lim = self.limits
            for which in ("minute", "day"):
                remaining, reset = lim.get(f"{which}_remaining"), lim.get(f"{which}_reset")
                if isinstance(remaining, (int, float)) and remaining <= 0 and isinstance(reset, (int, float)):
                    left = float(reset) - self._elapsed()
                    if left > 0:
                        self._wait(left, f"{which} limit of {lim.get(f'{which}_limit', '?')} points used up")
                    self._forget_limits()
                    self._in_flight += 1
                    self._sent += 1
                    return self._sent
            for which in ("minute", "day"):
                if isinstance(lim.get(f"{which}_remaining"), (int, float)):
                    lim[f"{which}_remaining"] -= 1
            self._in_flight += 1
            self._sent += 1
            return self._sent

    def _forget_limits(self) -> None:
        # After a reset the answers still on their way describe the old window: ignore them.
        self.limits = {}
        self._limits_from = self._sent + 1

    def _wait(self, seconds: float, why: str) -> None:
        seconds = max(seconds, 0.0) + 0.2  # past the reset, not on it
        if seconds > self.max_rate_wait:
            raise RateLimitError(f"{why}; resets in {seconds:.0f} s, more than max_rate_wait_seconds = "
                                 f"{self.max_rate_wait:g}; the next run resumes", code=-32029,
                                 mnemonic="limit_exceeded")
        log.info("CoMagic rate limit: %s; waiting %.1f s for the reset", why, seconds)
        self.waited_seconds += seconds
        self._sleep(seconds)
        self._forget_limits()

    # ---- calls report ------------------------------------------------------------------------

    def calls_page(self, start: dt.datetime, end: dt.datetime, fields: Sequence[str], limit: int,
                   offset: int) -> Tuple[List[dict], int]:
        result = self.call("get.calls_report", {
            "date_from": start.strftime(TIME_FMT), "date_till": end.strftime(TIME_FMT),
            "fields": list(fields), "limit": limit, "offset": offset})
        data = result.get("data")
        total = (result.get("metadata") or {}).get("total_items")
        if not isinstance(data, list) or not isinstance(total, int):
            raise ComagicError("get.calls_report answer lacks data or metadata.total_items")
        return data, total

    def iter_calls(self, start: dt.datetime, end: dt.datetime, fields: Sequence[str], *,
                   page_limit: int = 10000, max_rows: int = 100000,
                   on_page: Optional[Callable[[int, int], None]] = None,
                   on_range: Optional[Callable[[dt.datetime], None]] = None) -> Iterator[List[dict]]:
        """Yield pages of the calls that started in [START, END) (END exclusive). Ranges are done in
        time order; ON_RANGE(b) says every call before b has been yielded.

        Each range is first counted with a one-row request (metadata.total_items); a range holding
        more than MAX_ROWS is split in halves before any full page is fetched. Ranges end one second
        before the next one starts once date_till is known to be inclusive (see _till), so a call on
        a boundary second is fetched once; while that is unknown the caller still de-duplicates by
        id. Pages of a range are fetched two at a time (offsets are known from the count), so the
        next page is on its way while the caller converts this one."""
        stack = [(start, end)]
        while stack:
            a, b = stack.pop()
            try:
                till = self._till(b, fields)
                first, total = self.calls_page(a, till, fields, COUNT_LIMIT, 0)
                if total > max_rows:
                    raise PagingReachError(f"{total} rows in {a} .. {till}, more than max_rows_per_range = {max_rows}")
                yield from self._pages(a, till, fields, page_limit, first, total, on_page)
                if on_range:
                    on_range(b)
            except (DateIntervalError, PagingReachError) as e:
                if (b - a).total_seconds() < 2:
                    raise
                mid = a + (b - a) / 2
                mid = mid.replace(microsecond=0)
                log.info("splitting %s .. %s at %s: %s", a, b, mid, e.mnemonic or e)
                stack.extend([(mid, b), (a, mid)])  # a..mid is popped first

    def _till(self, b: dt.datetime, fields: Sequence[str]) -> dt.datetime:
        """date_till for a range that must stop just before B. If date_till is inclusive that is
        B - 1 s, else B. Unknown until a one-second range [B, B] is seen holding calls (only an
        inclusive date_till can answer rows for it); with no call at B both are right."""
        if self.till_inclusive is None:
            try:
                _, n = self.calls_page(b, b, fields, COUNT_LIMIT, 0)
            except ComagicError as e:
                if e.code != -32602:
                    raise
                log.info("date_from = date_till refused (%s); range ends overlap by a second", e.mnemonic)
                self.till_inclusive = False
                return b
            if n:
                self.till_inclusive = True
        return b - dt.timedelta(seconds=1) if self.till_inclusive else b

    def _pages(self, a, b, fields, page_limit, first, total, on_page) -> Iterator[List[dict]]:
        offsets = list(range(len(first), total, page_limit)) if first else []
        if on_page:
            on_page(len(first), total)
        if first:
            yield first
        if not offsets:
            if total and not first:
                raise PagingReachError(f"empty first page of {total} rows")
            return
        with ThreadPoolExecutor(2, thread_name_prefix="comagic") as pool:
            futures = [pool.submit(self._page_at, a, b, fields, page_limit, o) for o in offsets[:2]]
            nxt = 2
            try:
                while futures:
                    data, offset = futures.pop(0).result()
                    if nxt < len(offsets):
                        futures.append(pool.submit(self._page_at, a, b, fields, page_limit, offsets[nxt]))
                        nxt += 1
                    if not data:
                        raise PagingReachError(f"empty page at offset {offset} of {total}")
                    if on_page:
                        on_page(len(data), total)
                    yield data
                    del data  # let the page go before the next one arrives
            finally:
                for f in futures:
                    f.cancel()

    def _page_at(self, a, b, fields, limit, offset) -> Tuple[List[dict], int]:
        try:
            return self.calls_page(a, b, fields, limit, offset)[0], offset
        except ComagicError as e:
            if e.code == -32602 and e.field == "offset":
                raise PagingReachError(str(e), code=e.code, mnemonic=e.mnemonic, field=e.field) from None
            raise
