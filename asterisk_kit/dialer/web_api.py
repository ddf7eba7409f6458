"""The autodialer's JSON API for a CRM (/api/dialer/v1/...) and the page of its tokens (/dialer/tokens).

The API is authenticated by `Authorization: Bearer <token>` only (see tokens.py), never by the
session cookie, which is why web/app.py lets these requests past the CSRF check. Every call is logged
with the token's prefix and name and its user, never the token. Each token gets RATE_PER_MINUTE
requests a minute (a token bucket in this process: the web app is one process).

A new token must be shown once after the form's redirect but never stored in clear, so it waits in
this process's memory (per session, for a few minutes) until that page is shown, not in the flash
table of the store.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import bottle

from . import schedule, store, tokens
from .numbers import BadNumber, Entry, NumberRules, comment, digit

API = "/api/dialer/v1"
MAX_BODY = 1024 * 1024          # bytes of a request body
MAX_ITEMS = 1000                # numbers per request
MAX_LIMIT = 1000                # results per page
DEFAULT_LIMIT = 500
RATE_PER_MINUTE = 120
FRESH_SECONDS = 600.0           # how long a new token waits to be shown

STRINGS = {
    "ru": {
        "tokens.title": "API-ключи",
        "tokens.intro": "Ключ даёт CRM доступ к API автообзвона: добавлять номера в кампанию и читать результаты. "
                        "Описание API: docs/dialer-api.md.",
        "tokens.new": "Новый ключ",
        "tokens.name": "Название (для чего ключ)",
        "tokens.col.name": "Название",
        "tokens.scope": "Доступ",
        "tokens.scope.all": "все кампании",
        "tokens.expires": "Действует до (необязательно)",
        "tokens.create": "Создать ключ",
        "tokens.created": "Ключ «{name}» создан.",
        "tokens.once": "Скопируйте ключ сейчас: он показывается только один раз.",
        "tokens.list": "Ключи",
        "tokens.empty": "Ключей пока нет.",
        "tokens.prefix": "Ключ",
        "tokens.owner": "Владелец",
        "tokens.created_at": "Создан",
        "tokens.last_used": "Последнее использование",
        "tokens.never": "не использовался",
        "tokens.state": "Состояние",
        "tokens.state.active": "действует",
        "tokens.state.revoked": "отозван",
        "tokens.state.expired": "истёк",
        "tokens.revoke": "Отозвать",
        "tokens.revoke.confirm": "Отозвать ключ? CRM с этим ключом сразу потеряет доступ.",
        "tokens.revoked": "Ключ «{name}» отозван.",
        "tokens.name.bad": "Название: от 1 до 80 символов в одну строку.",
        "tokens.scope.bad": "Выберите кампанию из списка.",
        "tokens.expires.bad": "Дата в формате ГГГГ-ММ-ДД, не раньше завтрашнего дня.",
        "tokens.forbidden": "Это чужой ключ.",
    },
    "en": {
        "tokens.title": "API tokens",
        "tokens.intro": "A token gives a CRM access to the autodialer's API: add numbers to a campaign and read "
                        "the results. The API is described in docs/dialer-api.md.",
        "tokens.new": "New token",
        "tokens.name": "Name (what the token is for)",
        "tokens.col.name": "Name",
        "tokens.scope": "Access",
        "tokens.scope.all": "all campaigns",
        "tokens.expires": "Valid until (optional)",
        "tokens.create": "Create token",
        "tokens.created": "Token “{name}” created.",
        "tokens.once": "Copy the token now: it is shown only once.",
        "tokens.list": "Tokens",
        "tokens.empty": "No tokens yet.",
        "tokens.prefix": "Token",
        "tokens.owner": "Owner",
        "tokens.created_at": "Created",
        "tokens.last_used": "Last used",
        "tokens.never": "never",
        "tokens.state": "State",
        "tokens.state.active": "active",
        "tokens.state.revoked": "revoked",
        "tokens.state.expired": "expired",
        "tokens.revoke": "Revoke",
        "tokens.revoke.confirm": "Revoke the token? A CRM using it loses access at once.",
        "tokens.revoked": "Token “{name}” revoked.",
        "tokens.name.bad": "Name: 1 to 80 characters on one line.",
        "tokens.scope.bad": "Choose a campaign from the list.",
        "tokens.expires.bad": "A date YYYY-MM-DD, tomorrow or later.",
        "tokens.forbidden": "This is someone else's token.",
    },
}

# Plain-English reasons for a rejected number (the API answers in English, the key is stable).
REASONS = {
    "number.empty": "empty number", "number.chars": "only digits (and +7 at the start) are allowed",
    "number.pattern": "does not match the configured number format",
    "digit.bad": "the digit must be one of 0-9 or empty", "comment.long": "comment longer than 200 characters",
    "item.bad": "not a number string or an object with \"number\"",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class RateLimit:
    """A token bucket per API token: RATE requests a minute, bursts up to RATE."""

    def __init__(self, per_minute: int):
        self.rate, self.cap = per_minute / 60.0, float(per_minute)
        self._lock = threading.Lock()
        self._buckets: Dict[int, Tuple[float, float]] = {}

    def take(self, key: int, now: Optional[float] = None) -> float:
        """0 when allowed (one request charged), else the seconds to wait (nothing charged)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            level, at = self._buckets.get(key, (self.cap, now))
            level = min(self.cap, level + (now - at) * self.rate)
            if level < 1.0:
                self._buckets[key] = (level, now)
                return (1.0 - level) / self.rate
            self._buckets[key] = (level - 1.0, now)
            return 0.0


class FreshTokens:
    """New tokens waiting to be shown once, by session, in memory only."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_session: Dict[str, Tuple[float, int, str]] = {}

    @staticmethod
    def _key(sid: str) -> str:
        return hashlib.sha256(("fresh-token:" + sid).encode("ascii", "replace")).hexdigest()

    def put(self, sid: str, token_id: int, secret: str) -> None:
        now = time.monotonic()
        with self._lock:
            for k in [k for k, v in self._by_session.items() if v[0] < now]:
                del self._by_session[k]
            self._by_session[self._key(sid)] = (now + FRESH_SECONDS, token_id, secret)

    def take(self, sid: str) -> Optional[Tuple[int, str]]:
        with self._lock:
            got = self._by_session.pop(self._key(sid), None)
        if got is None or got[0] < time.monotonic():
            return None
        return got[1], got[2]


def bearer(environ_or_headers) -> str:
    value = environ_or_headers.get("HTTP_AUTHORIZATION", "") if isinstance(environ_or_headers, dict) \
        else environ_or_headers.get("Authorization", "")
    return value[7:].strip() if value[:7].lower() == "bearer " else ""


def iso(cfg, t: Optional[float]) -> Optional[str]:
    """ISO 8601 with the PBX's offset (e.g. 2026-12-01T10:00:05+03:00)."""
    return None if t is None else dt.datetime.fromtimestamp(t, schedule.tz(cfg)).isoformat(timespec="seconds")


def parse_numbers(data: Any, rules: NumberRules) -> Tuple[List[Tuple[List[int], Entry]], List[Dict[str, Any]]]:
    """The request's items -> (indexes, entry) per number to store (a number given twice: the last item's
    digit and comment) and the rejected items' reports. Items: a number string, or {"number", "digit"
    (or "dtmf"), "comment"}."""
    if isinstance(data, dict):
        data = data.get("numbers")
    if not isinstance(data, list):
        raise ApiError(400, 'expected {"numbers": [...]} or a JSON list of numbers')
    if len(data) > MAX_ITEMS:
        raise ApiError(413, f"at most {MAX_ITEMS} numbers per request (got {len(data)}): send them in parts")
    good: Dict[str, Tuple[List[int], Entry]] = {}
    rejected: List[Dict[str, Any]] = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            item = {"number": item}
        if not isinstance(item, dict):
            rejected.append({"index": i, "status": "rejected", "reason": "item.bad", "message": REASONS["item.bad"]})
            continue
        raw = {k: item.get(k) for k in ("number", "digit", "dtmf", "comment")}
        try:
            e = Entry(rules.number(_text(raw["number"])),
                      digit(_text(raw["digit"] if raw["digit"] is not None else raw["dtmf"])),
                      comment(_text(raw["comment"])))
        except BadNumber as err:
            shown = raw["number"] if isinstance(raw["number"], str) else None
            rejected.append({"index": i, "number": shown[:40] if shown else shown, "status": "rejected",
                             "reason": err.key, "message": REASONS.get(err.key, str(err))})
            continue
        good[e.number] = (good[e.number][0] + [i] if e.number in good else [i], e)
    return list(good.values()), rejected


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        return "\x00"                       # refused by every check: not a string or a whole number
    return str(v)


def register(web) -> None:
    app, req = web.app, bottle.request
    web.strings(STRINGS)
    tokens.init(web.db())
    rules = NumberRules.from_config(web.cfg)
    limiter, fresh = RateLimit(RATE_PER_MINUTE), FreshTokens()

    def bearer_login(environ) -> bool:
        secret = bearer(environ)
        return bool(secret) and environ.get("PATH_INFO", "").startswith(API + "/") \
            and tokens.lookup(web.db(), secret) is not None
    web.bearer_login = bearer_login

    # ---- the page -------------------------------------------------------------------------------

    def is_admin() -> bool:
        from ..web import perms
        p = perms.get(web.db(), web.user() or "")
        return p is not None and p.has("admin")

    @app.get("/dialer/tokens")
    @web.login_required
    def tokens_page():
        c, f, now = web.db(), web.flashed(), time.time()
        admin = is_admin()
        s = web.session()
        new = fresh.take(s.sid) if s else None
        rows = [dict(r, state="revoked" if r["revoked"] else "expired" if r["expires"] and r["expires"] <= now
                     else "active") for r in tokens.listing(c, None if admin else web.user())]
        return web.render("dialer_tokens.html", dnav="tokens", tokens=rows, admin=admin,
                          campaigns=store.campaigns(c), new_token=new[1] if new else None,
                          when=lambda t: iso(web.cfg, t)[:16].replace("T", " ") if t else "",
                          errors=f["errors"], form=f["form"], notice=f["notice"])

    @app.post("/dialer/tokens")
    @web.login_required
    def token_create():
        f = req.forms
        name = " ".join((f.getunicode("name") or "").split())
        scope = (f.getunicode("scope") or "").strip()
        expires_raw = (f.getunicode("expires") or "").strip()
        form = {"name": f.getunicode("name") or "", "scope": scope, "expires": expires_raw}
        errors = {}
        if not name or len(name) > tokens.MAX_NAME:
            errors["token-name"] = web.t("tokens.name.bad")
        campaign_id: Optional[int] = None
        if scope not in ("", "all"):
            if not re.fullmatch(r"[0-9]{1,9}", scope) or store.campaign(web.db(), int(scope)) is None:
                errors["token-scope"] = web.t("tokens.scope.bad")
            else:
                campaign_id = int(scope)
        expires = None
        if expires_raw:
            try:
                day = dt.date.fromisoformat(expires_raw)
                if day <= schedule.now(web.cfg).date():
                    raise ValueError(expires_raw)
                # valid through that whole day, PBX time
                expires = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), schedule.tz(web.cfg)).timestamp()
            except ValueError:
                errors["token-expires"] = web.t("tokens.expires.bad")
        if errors:
            web.redirect_with("/dialer/tokens", errors=errors, form=form)
        token_id, secret = tokens.create(web.db(), web.user() or "", name, campaign_id, expires)
        s = web.session()
        if s is not None:
            fresh.put(s.sid, token_id, secret)
        web.log.info("dialer api: %s created token %s %r (campaign %s)", web.user(), secret[:tokens.PREFIX_LEN], name,
                     campaign_id if campaign_id is not None else "all")
        web.redirect_with("/dialer/tokens", notice=web.t("tokens.created", name=name), anchor="new-token")

    @app.post("/dialer/tokens/<token_id:int>/revoke")
    @web.login_required
    def token_revoke(token_id):
        row = tokens.get(web.db(), token_id)
        if row is None:
            raise bottle.HTTPError(404)
        if row["user"] != web.user() and not is_admin():
            web.log.warning("dialer api: %s refused revoking token %s of %s", web.user(), row["prefix"], row["user"])
            raise bottle.HTTPError(403, web.t("tokens.forbidden"))
        tokens.revoke(web.db(), token_id)
        web.log.info("dialer api: %s revoked token %s %r of %s", web.user(), row["prefix"], row["name"], row["user"])
        web.redirect_with("/dialer/tokens", notice=web.t("tokens.revoked", name=row["name"]))

    # ---- the API --------------------------------------------------------------------------------

    def api(fn):
        """Bearer auth, rate limit, JSON errors and one log line per call (never the token)."""
        @functools.wraps(fn)
        def inner(*a, **kw):
            tok: Optional[tokens.Token] = None
            try:
                secret = bearer(req.headers)
                if not secret:
                    raise ApiError(401, "missing token: send 'Authorization: Bearer <token>'",
                                   {"WWW-Authenticate": 'Bearer realm="asterisk-kit"'})
                tok = tokens.lookup(web.db(), secret)
                if tok is None:
                    raise ApiError(401, "unknown, revoked or expired token",
                                   {"WWW-Authenticate": 'Bearer realm="asterisk-kit", error="invalid_token"'})
                wait = limiter.take(tok.id)
                if wait:
                    raise ApiError(429, f"rate limit: at most {RATE_PER_MINUTE} requests a minute per token",
                                   {"Retry-After": str(max(1, int(wait + 0.999)))})
                tokens.touch(web.db(), tok.id)
                body = fn(tok, *a, **kw)
                out = web.json(body)
            except ApiError as e:
                for k, v in e.headers.items():
                    bottle.response.set_header(k, v)
                out = web.json({"error": e.message, "status": e.status}, e.status)
            who = f"token {tok.prefix}… {tok.name!r} of {tok.user}" if tok else "no valid token"
            web.log.info("dialer api: %s %s%s -> %d (%s, from %s)", req.method, req.path,
                         "?" + req.query_string if req.query_string else "", bottle.response.status_code, who,
                         web.client_ip())
            return out
        return inner

    def campaign_in_scope(tok: tokens.Token, campaign_id: int):
        if not tok.allows(campaign_id):
            raise ApiError(403, f"this token is limited to campaign {tok.campaign_id}")
        row = store.campaign(web.db(), campaign_id)
        if row is None:
            raise ApiError(404, f"no campaign {campaign_id}")
        return row

    @app.get(API + "/campaigns")
    @api
    def api_campaigns(tok):
        return {"campaigns": [{"id": c["id"], "name": c["name"], "state": c["state"], "numbers": c["numbers"]}
                              for c in store.campaigns(web.db(), archived=True) if tok.allows(c["id"])]}

    @app.post(API + "/campaigns/<campaign_id:int>/numbers")
    @api
    def api_add_numbers(tok, campaign_id):
        c = campaign_in_scope(tok, campaign_id)
        if c["state"] == "archived":
            raise ApiError(409, f"campaign {campaign_id} is archived")
        if (req.content_length or 0) > MAX_BODY:
            raise ApiError(413, f"request body over {MAX_BODY} bytes: send the numbers in parts")
        raw = req.body.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"request body over {MAX_BODY} bytes: send the numbers in parts")
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ApiError(400, "the body must be UTF-8 JSON") from None
        except json.JSONDecodeError as e:
            raise ApiError(400, f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
        except RecursionError:
            raise ApiError(400, "JSON nested too deeply") from None
        good, rejected = parse_numbers(data, rules)
        conn = web.db()
        numbers = [e.number for _, e in good]       # each once
        existing = set()
        for i in range(0, len(numbers), 500):
            part = numbers[i:i + 500]
            existing |= {r[0] for r in conn.execute(
                f"SELECT number FROM dialer_phones WHERE campaign_id = ? AND number IN ({','.join('?' * len(part))})",
                (campaign_id, *part))}
        if good:
            store.upsert_phones(conn, [e for _, e in good], campaign_id)
        items = rejected + [{"index": i, "number": e.number, "status": "updated" if e.number in existing else "added"}
                            for indexes, e in good for i in indexes]
        items.sort(key=lambda x: x["index"])
        # counted per number: one given twice is one number added (or updated)
        counts = {"added": sum(1 for _, e in good if e.number not in existing),
                  "updated": sum(1 for _, e in good if e.number in existing), "rejected": len(rejected)}
        web.log.info("dialer api: token %s… added %d, updated %d, rejected %d number(s) in campaign %d",
                     tok.prefix, counts["added"], counts["updated"], counts["rejected"], campaign_id)
        return {"campaign": campaign_id, **counts, "items": items}

    @app.get(API + "/campaigns/<campaign_id:int>/results")
    @api
    def api_results(tok, campaign_id):
        campaign_in_scope(tok, campaign_id)
        since, limit = req.query.get("since", "0"), req.query.get("limit", str(DEFAULT_LIMIT))
        if not re.fullmatch(r"[0-9]{1,18}", since):
            raise ApiError(400, "since: the `next` cursor of the previous answer (a whole number), or 0")
        if not re.fullmatch(r"[0-9]{1,5}", limit) or not 1 <= int(limit) <= MAX_LIMIT:
            raise ApiError(400, f"limit: a whole number 1..{MAX_LIMIT}")
        rows = web.db().execute(
            "SELECT c.*, coalesce(p.comment, '') AS comment FROM dialer_calls c "
            "JOIN dialer_runs r ON r.id = c.run_id "
            "LEFT JOIN dialer_phones p ON p.campaign_id = r.campaign_id AND p.number = c.number "
            "WHERE r.campaign_id = ? AND c.changed > ? ORDER BY c.changed LIMIT ?",
            (campaign_id, int(since), int(limit))).fetchall()
        results = [result_json(web.cfg, r) for r in rows]
        return {"campaign": campaign_id, "results": results,
                "next": results[-1]["cursor"] if results else int(since), "more": len(results) == int(limit)}


def result_json(cfg, r) -> Dict[str, Any]:
    final = r["state"] in ("done", "withdrawn")
    return {"cursor": r["changed"], "run_id": r["run_id"], "number": r["number"], "comment": r["comment"],
            "state": r["state"], "final": final, "outcome": r["result"] if final else None,
            "attempts": r["attempts"], "digit_pressed": r["pressed"] or None, "opted_out": bool(r["optout"]),
            "first_call": iso(cfg, r["first_call"]), "last_call": iso(cfg, r["spooled"]),
            "finished": iso(cfg, r["finished"]) if final else None}
