"""A fake CoMagic Data API v2.0 (JSON-RPC 2.0) on 127.0.0.1, following the vendor's documented
behaviour: envelope checks, login.user tokens that expire, get.calls_report with limit/offset
paging and total_items, metadata.limits minute/day counters, the 3-month range limit, and the
documented error object (code, message, data.mnemonic/field). Errors come with HTTP 200.

Where the documentation says nothing, the pick is marked [U] below.
Fault injection: `faults[n] = kind` makes the n-th get.calls_report request (1-based) fail once:
"internal_error" (-32603), "http_502", "limit_exceeded" (-32029), "expire_token" (every token
expires just before it is checked).

Serving cost: each row is rendered and JSON-encoded once per field list and kept (rows are
deterministic), so a page is a join of cached bytes. Without that the fake's own row generation
(~60 us a row) was the slowest part of any benchmark that used it, fetch baseline included.
`latency`: seconds every answer is held before it is sent, standing for the network round trip and
the server's own work on a real cloud API (the vendor documents neither; benchmarks choose it).

Run alone for benchmarks: python -m testbed.fakes.comagic --calls 150000 --days 7 [--latency 0.2]
(prints the URL).
"""
from __future__ import annotations

import bisect
import calendar
import datetime as dt
import json
import random
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional

from testbed.fakes.server import LocalServer

TIME_FMT = "%Y-%m-%d %H:%M:%S"

REPORT_PARAMS = {"access_token", "user_id", "date_from", "date_till", "limit", "offset", "filter", "sort", "fields"}
LOGIN_PARAMS = {"login", "password"}

# Documented call fields and a generator for each (types as documented).
_FINISH = ["subscriber_disconnects", "operator_disconnects", "timeout", "no_operators"]
_SOURCES = ["va", "sitephone", "calltracking", "callapi", "other"]
_CHANNELS = ["organic", "direct", "referral", "ad", "social", "email"]
_DEVICES = ["desktop", "mobile", "tablet", "other"]
_ATTRS = ["primary", "secondary", "lost", "target", "off-target", "quality", "rest"]


def _add_months(d: dt.datetime, months: int) -> dt.datetime:
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    return d.replace(year=y, month=m, day=min(d.day, calendar.monthrange(y, m)[1]))


class FakeComagic(LocalServer):
    def __init__(self, *, calls: int = 1000, first_day: dt.date = dt.date(2026, 1, 1), days: int = 10,
                 login: str = "analytics", password: str = "secret-pw", permanent_key: str = "perm-key-1",
                 token_ttl: float = 3600.0, max_limit: int = 10000, max_reach: int = 110000,
                 max_months: int = 3, minute_limit: int = 1000, minute_window: float = 60.0,
                 day_limit: int = 100000, seed: int = 7, latency: float = 0.0):
        self.login, self.password, self.permanent_key = login, password, permanent_key
        self.token_ttl = token_ttl
        self.max_limit, self.max_reach, self.max_months = max_limit, max_reach, max_months
        self.minute_limit, self.minute_window, self.day_limit = minute_limit, minute_window, day_limit
        self.seed = seed
        self.latency = latency
        self._encoded: Dict[tuple, List[Optional[bytes]]] = {}   # fields -> each row's JSON, made once
        self.faults: Dict[int, str] = {}
        self.held_back: Dict[int, float] = {}   # report request number -> seconds its answer is held back
        self.tokens: Dict[str, float] = {}      # token -> expires at (monotonic)
        self.lock = threading.Lock()
        self.report_requests = 0
        self.login_requests = 0
        self.requests_log: List[dict] = []      # params of each get.calls_report (without token)
        self.errors_sent: List[str] = []        # mnemonic of every error answered
        self.answers: List[dict] = []           # per answered report: its params, total_items, ids sent
        self._minute_start, self._minute_used = time.monotonic(), 0
        self._day_start, self._day_used = time.monotonic(), 0
        # Calls spread over the days, a few exactly at midnight (boundary cases), sorted by time.
        rng = random.Random(seed)
        start = dt.datetime.combine(first_day, dt.time())
        span = days * 86400
        secs = sorted(rng.randrange(span) for _ in range(calls))
        for i in range(0, len(secs), 997):
            secs[i] = secs[i] - secs[i] % 86400      # midnight calls (day boundaries)
        for i in range(1, len(secs), 37):
            secs[i] = secs[i] - secs[i] % 86400 + 43200  # noon calls (where ranges are split in halves)
        secs.sort()
        self._epoch = start
        self._secs = secs                         # call k: id = k + 1, start = epoch + secs[k]
        self.server: Optional[ThreadingHTTPServer] = None

    # ---- data ----------------------------------------------------------------------------------

    def call_time(self, k: int) -> dt.datetime:
        return self._epoch + dt.timedelta(seconds=self._secs[k])

    def calls_per_day(self) -> Dict[dt.date, int]:
        out: Dict[dt.date, int] = {}
        for k in range(len(self._secs)):
            d = self.call_time(k).date()
            out[d] = out.get(d, 0) + 1
        return out

    def record(self, k: int) -> dict:
        r = random.Random(self.seed * 1_000_003 + k)
        st = self.call_time(k)
        talk = r.randrange(0, 600)
        lost = talk == 0 or r.random() < 0.1
        tags = None if r.random() < 0.3 else [
            {"tag_id": t, "tag_name": f"tag-{t}", "tag_type": r.choice(["auto", "manual"]),
             "tag_change_time": st.strftime(TIME_FMT), "tag_user_id": None, "tag_user_login": None,
             "tag_employee_id": None, "tag_employee_full_name": None}
            for t in r.sample(range(1, 9), r.randrange(0, 3))]
        campaign = r.randrange(1, 6)
        return {
            "id": k + 1, "start_time": st.strftime(TIME_FMT),
            "finish_time": (st + dt.timedelta(seconds=talk + 5)).strftime(TIME_FMT),
            "finish_reason": r.choice(_FINISH), "direction": r.choice(["in", "out"]), "source": r.choice(_SOURCES),
            "is_lost": lost, "is_transfer": r.random() < 0.05,
            "communication_number": r.randrange(1, 4), "communication_id": 500000 + k,
            "virtual_phone_number": "7495" + str(1000000 + campaign), "contact_phone_number": "79" + str(100000000 + k),
            "wait_duration": r.randrange(0, 30), "total_wait_duration": r.randrange(0, 60),
            "talk_duration": talk, "clean_talk_duration": max(talk - 3, 0), "total_duration": talk + 5,
            "postprocess_duration": None, "campaign_id": campaign, "campaign_name": f"Кампания {campaign}",
            "site_id": 1, "site_domain_name": "example.ru", "visitor_id": None if r.random() < 0.2 else 9000000 + k,
            "person_id": None if r.random() < 0.5 else 100 + k % 500, "visitor_type": r.choice(["new", "returning"]),
            "visits_count": r.randrange(1, 20), "visitor_first_campaign_id": campaign,
            "visitor_first_campaign_name": f"Кампания {campaign}",
            "visitor_device": r.choice(_DEVICES), "visitor_city": "Москва", "visitor_region": "Москва",
            "visitor_country": "Россия", "ua_client_id": f"{k}.{r.randrange(10**9)}",
            "ym_client_id": str(r.randrange(10**12)),
            "gclid": None, "yclid": None if r.random() < 0.7 else str(r.randrange(10**15)),
            "entrance_page": f"https://example.ru/p/{k % 40}", "referrer": None, "channel": r.choice(_CHANNELS),
            "utm_source": r.choice(["yandex", "google", None]), "utm_medium": r.choice(["cpc", None]),
            "utm_campaign": f"c{campaign}", "utm_content": None, "utm_term": None,
            "eq_utm_source": None, "eq_utm_medium": None, "eq_utm_campaign": None, "eq_utm_content": None,
            "eq_utm_term": None, "sale_date": None,
            "sale_cost": None if r.random() < 0.9 else round(r.random() * 1000, 2),
            "scenario_id": 10, "scenario_name": "Основной",
            "last_answered_employee_id": None if lost else 77,
            "last_answered_employee_full_name": None if lost else "Иванов",
            "first_answered_employee_id": None if lost else 77,
            "first_answered_employee_full_name": None if lost else "Иванов",
            "tags": tags,
            "attributes": r.sample(_ATTRS, r.randrange(0, 3)),
            "call_records": [], "employees": [],
        }

    @property
    def known_fields(self) -> List[str]:
        return list(self.record(0)) if self._secs else []

    # ---- server --------------------------------------------------------------------------------

    def start(self) -> "FakeComagic":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                status, answer = fake.handle(body)
                if answer and "error" in answer:
                    fake.errors_sent.append(answer["error"]["data"]["mnemonic"])
                raw = b"Bad Gateway" if answer is None else fake.encode(answer)
                if fake.latency:
                    time.sleep(fake.latency)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if answer is None else "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.serve(Handler)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2.0"

    def encode(self, answer: dict) -> bytes:
        """The answer as JSON; a page's rows (_Rows) are spliced in from their cached encodings."""
        result = answer.get("result")
        rows = result.get("data") if isinstance(result, dict) else None
        if not isinstance(rows, _Rows):
            return json.dumps(answer, ensure_ascii=False).encode()
        envelope = json.dumps(dict(answer, result=dict(result, data=_SPLICE)), ensure_ascii=False).encode()
        head, tail = envelope.split(json.dumps(_SPLICE).encode())
        return b"".join((head, b"[", b",".join(rows.encoded), b"]", tail))

    def _row_json(self, cache: List[Optional[bytes]], fields: tuple, k: int) -> bytes:
        raw = cache[k]
        if raw is None:
            rec = self.record(k)
            raw = cache[k] = json.dumps({f: rec[f] for f in fields}, ensure_ascii=False).encode()
        return raw

    # ---- JSON-RPC ------------------------------------------------------------------------------

    @staticmethod
    def _err(id_, code, message, mnemonic, field=None, value=None):
        data = {"mnemonic": mnemonic, "field": field, "value": value, "params": {}}
        return 200, {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message, "data": data}}

    def handle(self, body: bytes):
        # [U] the Content-Type is not checked: the documentation does not say what happens otherwise.
        try:
            req = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return self._err(None, -32700, "Parse error", "parse_error")
        if isinstance(req, list):
            return self._err(None, -32099, "Batch operations are not supported", "batch_opreations_not_supported")
        if not isinstance(req, dict):
            return self._err(None, -32600, "Invalid Request", "invalid_request")
        if "id" not in req:
            return self._err(None, -32099, "Notifications are not supported", "notifications_not_supported")
        id_ = req["id"]
        if req.get("jsonrpc") != "2.0" or not isinstance(req.get("method"), str) \
                or not isinstance(req.get("params", {}), dict):
            return self._err(id_, -32600, "Invalid Request", "invalid_request")
        method, params = req["method"], req.get("params", {})
        if method == "login.user":
            return self._login(id_, params)
        if method == "get.calls_report":
            with self.lock:
                answer = self._report(id_, params)
                hold = self.held_back.pop(self.report_requests, 0.0)
            time.sleep(hold)   # counted now, answered late: answers arrive out of order
            return answer
        return self._err(id_, -32601, f"Method {method} not found", "method_not_found")

    def _check_params(self, id_, params, allowed, required):
        for k in params:
            if k not in allowed:
                return self._err(id_, -32602, f"Unexpected parameter {k}", "unexpected_parameters", k)
        for k in required:
            if params.get(k) is None:
                return self._err(id_, -32602, f"Required parameter {k} is missed", "required_parameter_missed", k)
        return None

    def _login(self, id_, params):
        with self.lock:
            self.login_requests += 1
        bad = self._check_params(id_, params, LOGIN_PARAMS, ("login", "password"))
        if bad:
            return bad
        if params["login"] != self.login or params["password"] != self.password:
            # [U] the mnemonic of a wrong password: auth_error, the -32001 family's generic one.
            return self._err(id_, -32001, "Authorization error", "auth_error")
        token = secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
        expire_at = int(time.time() + self.token_ttl)
        return 200, {"jsonrpc": "2.0", "id": id_, "result": {"data": {"access_token": token, "expire_at": expire_at}}}

    def _limits(self, now: float) -> dict:
        return {"day_limit": self.day_limit, "day_remaining": max(self.day_limit - self._day_used, 0),
                "day_reset": max(int(86400 - (now - self._day_start)), 0),
                "minute_limit": self.minute_limit, "minute_remaining": max(self.minute_limit - self._minute_used, 0),
                # [U] whole seconds are documented; a sub-second window (tests) rounds up to 1.
                "minute_reset": max(round(self.minute_window - (now - self._minute_start), 3), 0)}

    def _report(self, id_, params):
        self.report_requests += 1
        n = self.report_requests
        fault = self.faults.pop(n, None)
        if fault == "http_502":
            return 502, None
        if fault == "internal_error":
            return self._err(id_, -32603, "Internal error", "internal_error")
        if fault == "expire_token":
            self.tokens = {t: 0.0 for t in self.tokens}
        bad = self._check_params(id_, params, REPORT_PARAMS, ("access_token", "date_from", "date_till"))
        if bad:
            return bad
        token = params["access_token"]
        now = time.monotonic()
        if token != self.permanent_key:
            if token not in self.tokens or self.tokens[token] <= now:
                # Documented: an expired login session answers access_token_invalid (not _expired).
                return self._err(id_, -32001, "Access token is invalid", "access_token_invalid")
        # Rate limits: [U] every get.calls_report weighs 1 point; login.user is free.
        if now - self._minute_start >= self.minute_window:
            self._minute_start, self._minute_used = now, 0
        if now - self._day_start >= 86400:
            self._day_start, self._day_used = now, 0
        if fault == "limit_exceeded":
            self._minute_used = self.minute_limit
        if self._day_used >= self.day_limit:
            # [U] the error's data carries no limits; the client must use the last metadata seen.
            return self._err(id_, -32029, "Limit per day has been exceeded. Try again later", "limit_exceeded")
        if self._minute_used >= self.minute_limit:
            return self._err(id_, -32029, "Limit per minute has been exceeded. Try again later", "limit_exceeded")
        self._minute_used += 1
        self._day_used += 1
        try:
            t0 = dt.datetime.strptime(str(params["date_from"]), TIME_FMT)
        except ValueError:
            return self._err(id_, -32602, "Invalid date", "data_type_error", "date_from", params["date_from"])
        try:
            t1 = dt.datetime.strptime(str(params["date_till"]), TIME_FMT)
        except ValueError:
            return self._err(id_, -32602, "Invalid date", "data_type_error", "date_till", params["date_till"])
        if t1 < t0:
            return self._err(id_, -32602, "date_till is before date_from", "invalid_parameters_combination",
                             "date_till")
        if t1 > _add_months(t0, self.max_months):
            return self._err(id_, -32602, f"Date interval is more than {self.max_months} months",
                             "date_interval_limit_reached", "date_till")
        limit, offset = params.get("limit", self.max_limit), params.get("offset", 0)
        for name, v in (("limit", limit), ("offset", offset)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                return self._err(id_, -32602, f"{name} must be a non-negative integer", "data_type_error", name, v)
        if limit > self.max_limit or limit == 0:
            # [U] the 10000 maximum is inferred; over it the fake refuses rather than clamps.
            return self._err(id_, -32602, f"limit must be from 1 to {self.max_limit}", "invalid_parameter_value",
                             "limit", limit)
        if offset >= self.max_reach:
            # [U] "no more than 110000 records": the fake refuses such offsets.
            return self._err(id_, -32602, f"offset must be less than {self.max_reach}", "invalid_parameter_value",
                             "offset", offset)
        fields = params.get("fields")
        known = self.known_fields
        if fields is not None:
            if not isinstance(fields, list):
                return self._err(id_, -32602, "fields must be a list", "data_type_error", "fields", fields)
            for f in fields:
                if f not in known:
                    return self._err(id_, -32602, f"Unexpected field {f}", "unexpected_parameters", "fields", f)
        else:
            fields = known[:12]  # [U] the default field set; the kit always sends fields
        self.requests_log.append({k: v for k, v in params.items() if k != "access_token"})
        # [U] date_till is inclusive, like date_from; rows sorted by start_time then id.
        lo = bisect.bisect_left(self._secs, int((t0 - self._epoch).total_seconds()))
        hi = bisect.bisect_right(self._secs, int((t1 - self._epoch).total_seconds()))
        total = max(hi - lo, 0)
        page = range(lo + offset, min(lo + offset + limit, hi))
        key = tuple(fields)
        cache = self._encoded.get(key) or self._encoded.setdefault(key, [None] * len(self._secs))
        data = _Rows([self._row_json(cache, key, k) for k in page])
        self.answers.append({"params": self.requests_log[-1], "total": total, "ids": [k + 1 for k in page]})
        return 200, {"jsonrpc": "2.0", "id": id_, "result": {
            "data": data, "metadata": {"total_items": total, "limits": self._limits(now)}}}


_SPLICE = "@@rows-spliced-here@@"


class _Rows(list):
    """A page's rows as their cached JSON encodings (spliced into the answer by encode())."""

    def __init__(self, encoded: List[bytes]):
        super().__init__()
        self.encoded = encoded


def main() -> None:
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=150000)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--first-day", default="2026-01-01")
    p.add_argument("--latency", type=float, default=0.0, help="seconds each answer is held (network + server)")
    a = p.parse_args()
    fake = FakeComagic(calls=a.calls, days=a.days, first_day=dt.date.fromisoformat(a.first_day),
                       latency=a.latency).start()
    print(fake.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
