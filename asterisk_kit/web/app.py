"""The Bottle web app: login, logout, server-side sessions, CSRF, ru/en, and the pages plug-in point.

A capability with pages names them in its descriptor (`pages`, "module:function"); when its
section is configured, `function(web)` gets the WebKit below and adds its routes, menu entry and
strings. Everything shared by the pages (who is logged in, CSRF, templates, language, the store)
lives here, so the pages only hold their own logic.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import logging
import threading
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import quote, urlsplit

import bottle
from jinja2 import Environment, FileSystemLoader

from .. import storage
from ..resources import shipped
from . import auth, flash, i18n, sessions

SESSION_COOKIE = "ak_session"
LOGIN_COOKIE = "ak_login"       # the login form's double-submit CSRF token (no session before login)
LANG_COOKIE = "ak_lang"
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# JSON APIs: authenticated by an `Authorization: Bearer` token only, never by the session cookie.
API_PREFIX = "/api/"

SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    # No inline scripts or styles: pages load /static files only.
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
]


def safe_next(target: Optional[str]) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    return target


class WebKit:
    """What a page module gets in register(web)."""

    def __init__(self, cfg, log: Optional[logging.Logger] = None):
        self.cfg = cfg
        self.log = log or logging.getLogger("asterisk_kit.web")
        self.app = bottle.Bottle()
        self.menu: List[tuple] = []
        self._local = threading.local()
        w = cfg["web"]
        self.session_ttl = w["session_hours"] * 3600.0
        self.session_max_age = w["session_max_hours"] * 3600.0
        self.secure = w["secure_cookies"] or bool(w["tls_cert"])
        auth.set_parallel_checks(w["password_checks"])
        self.trusted_proxies = w["trusted_proxies"]
        # Titles of the groups a user may be limited to (the users page); a capability's pages that
        # group extensions (the BLF panel) set it when they register.
        self.group_titles: Callable[[], List[str]] = lambda: []
        # Set by an API module: does this environ carry a live API token (for the body-size guard)?
        self.bearer_login: Optional[Callable[[dict], bool]] = None
        www = shipped("www")
        self.static_root = str(www / "static")
        self.jinja = Environment(loader=FileSystemLoader(str(www / "templates")), autoescape=True,
                                 trim_blocks=True, lstrip_blocks=True)

    # ---- per request ----------------------------------------------------------------------------

    def db(self):
        conn = getattr(self._local, "db", None)
        if conn is None:
            conn = self._local.db = storage.connect(self.cfg)
        return conn

    def session(self) -> Optional[sessions.Session]:
        env = bottle.request.environ
        if "ak.session" not in env:
            env["ak.session"] = sessions.load(self.db(), bottle.request.get_cookie(SESSION_COOKIE), self.session_ttl,
                                              self.session_max_age)
        return env["ak.session"]

    def has_login(self, environ) -> bool:
        """For the server's guard, before Bottle sees the request: does it carry a live login?"""
        if self.bearer_login is not None and self.bearer_login(environ):
            return True
        sid = bottle.BaseRequest(environ).get_cookie(SESSION_COOKIE)
        return sid is not None and sessions.load(self.db(), sid, self.session_ttl, self.session_max_age) is not None

    def user(self) -> Optional[str]:
        s = self.session()
        return s.user if s else None

    def lang(self) -> str:
        chosen = bottle.request.get_cookie(LANG_COOKIE)
        return chosen if chosen in i18n.LANGUAGES else self.cfg["web"]["language"]

    def t(self, key: str, **params) -> str:
        return i18n.translate(self.lang(), key, **params)

    def client_ip(self) -> str:
        """The peer address; X-Forwarded-For is believed only from [web] trusted_proxies."""
        peer = bottle.request.environ.get("REMOTE_ADDR", "")
        fwd = bottle.request.environ.get("HTTP_X_FORWARDED_FOR", "")
        if fwd and self._in(peer, self.trusted_proxies):
            last = fwd.split(",")[-1].strip()
            try:
                return str(ipaddress.ip_address(last))
            except ValueError:
                pass
        return peer

    @staticmethod
    def _in(addr: str, networks) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in networks)

    def ip_in(self, networks) -> bool:
        return self._in(self.client_ip(), networks)

    # ---- for page modules ----------------------------------------------------------------------

    def nav(self, path: str, label_key: str, visible: Optional[Callable] = None) -> None:
        """A menu entry; `visible(web)` false hides it for this request (e.g. admin-only pages)."""
        self.menu.append((path, label_key, visible))

    def strings(self, table: Dict[str, Dict[str, str]]) -> None:
        i18n.add(table)

    def render(self, template: str, **values) -> str:
        s = self.session()
        base = {
            "_": self.t, "lang": self.lang(), "user": self.user(), "csrf": s.csrf if s else "",
            "menu": [(p, k) for p, k, v in self.menu if v is None or v(self)] if self.user() else [],
            "path": bottle.request.path,
            "quote": lambda v: quote(str(v), safe=""),
        }
        base.update(values)
        return self.jinja.get_template(template).render(**base)

    def login_required(self, fn: Optional[Callable] = None, *, allow: Optional[Callable] = None):
        """Decorator: the route needs a logged-in user (or `allow(web)` true, e.g. a wall screen's
        network). Pages get a redirect to the login form; JSON and POST requests get 401."""
        def wrap(f):
            @functools.wraps(f)
            def inner(*a, **kw):
                if self.user() or (allow is not None and allow(self)):
                    return f(*a, **kw)
                req = bottle.request
                if req.method == "GET" and "json" not in req.headers.get("Accept", "") and "text/event-stream" \
                        not in req.headers.get("Accept", ""):
                    target = req.fullpath + ("?" + req.query_string if req.query_string else "")
                    bottle.redirect("/login?next=" + quote(target, safe=""))
                raise bottle.HTTPError(401, self.t("login.expired"))
            return inner
        return wrap(fn) if fn is not None else wrap

    def set_session_cookie(self, sid: str) -> None:
        bottle.response.set_cookie(SESSION_COOKIE, sid, path="/", httponly=True, samesite="lax", secure=self.secure)

    def redirect_with(self, path: str, *, errors: Optional[Dict[str, str]] = None,
                      form: Optional[Dict[str, str]] = None, notice: str = "", anchor: str = ""):
        """Answer a form with a 303 to PATH (no resubmission on reload), carrying its errors
        (field id -> message, shown at the top with a link to the field), the typed input and a
        notice to that page's next view (see `flashed`)."""
        s = self.session()
        if s is not None and (errors or form or notice):
            flash.put(self.db(), s.sid, path.split("?")[0],
                      {"errors": errors or {}, "form": form or {}, "notice": notice})
        bottle.redirect(path + (f"#{anchor}" if anchor else ""), 303)

    def flashed(self) -> Dict[str, Any]:
        """What the last form sent to this page with redirect_with: {errors, form, notice}, once."""
        s = self.session()
        data = flash.take(self.db(), s.sid, bottle.request.path) if s is not None else None
        return data or {"errors": {}, "form": {}, "notice": ""}

    def json(self, data, status: int = 200):
        bottle.response.status = status
        bottle.response.content_type = "application/json; charset=utf-8"
        return json.dumps(data, ensure_ascii=False)


def _security_headers(app):
    """WSGI wrapper: the headers go on every answer, error pages and static files included."""
    def wrapped(environ, start_response):
        def sr(status, headers, exc_info=None):
            names = {h.lower() for h, _ in headers}
            headers = list(headers) + [(h, v) for h, v in SECURITY_HEADERS if h.lower() not in names]
            if "cache-control" not in names:
                headers.append(("Cache-Control", "no-store"))
            return start_response(status, headers, exc_info)
        return app(environ, sr)
    return wrapped


def create_web(cfg, log: Optional[logging.Logger] = None) -> WebKit:
    web = WebKit(cfg, log)
    conn = web.db()
    auth.init(conn)
    sessions.prune(conn, web.session_ttl, web.session_max_age)
    _core_routes(web)
    from . import users
    users.register(web)         # /users, /users/audit: admin only
    from ..capabilities import configured, resolve
    for cap in configured(cfg):
        if cap.pages:
            resolve(cap.pages)(web)
    from ..status.web import register as register_status
    register_status(web)        # always: the admin's /status page
    return web


def wsgi_app(web: WebKit):
    return _security_headers(web.app)


def create_app(cfg, log: Optional[logging.Logger] = None):
    """The WSGI application for `asterisk-kit web` (and any WSGI server)."""
    return wsgi_app(create_web(cfg, log))


def _core_routes(web: WebKit) -> None:
    app, req, resp = web.app, bottle.request, bottle.response

    def parse_form():
        """Parse the body once, here: a malformed one is the client's fault (400), not a 500."""
        try:
            _ = req.forms, req.files   # reading these properties parses the body
        except (bottle.MultipartError, UnicodeError, ValueError) as e:
            web.log.warning("refused %s %s from %s: malformed form body (%s)", req.method, req.path,
                            web.client_ip(), e)
            raise bottle.HTTPError(400, web.t("error.400")) from e

    def api_without_cookie_auth() -> bool:
        """An API call that the API authenticates by its Bearer token alone: CSRF is a cookie's risk,
        and a browser cannot add an Authorization header to a cross-site request. A request that
        carries a live session cookie and no Bearer token stays under the CSRF check."""
        return req.path.startswith(API_PREFIX) and (
            req.headers.get("Authorization", "")[:7].lower() == "bearer " or web.session() is None)

    @app.hook("before_request")
    def csrf_guard():
        if req.method in UNSAFE_METHODS and req.path != "/login" and not api_without_cookie_auth():
            s = web.session()
            if s is None:
                # The session ended (expired, password changed, logged out elsewhere): say so and come
                # back to the page after logging in; the body is not even parsed.
                web.log.info("%s %s from %s: no live session, sent to log in", req.method, req.path,
                             web.client_ip())
                if "json" in req.headers.get("Accept", "") or req.headers.get("X-CSRF-Token"):
                    raise bottle.HTTPError(401, web.t("login.ended"))
                back = urlsplit(req.headers.get("Referer", ""))
                page = safe_next(back.path + ("?" + back.query if back.query else ""))
                bottle.redirect("/login?m=login.ended&next=" + quote(page + "#ak-restore", safe=""), 303)
            parse_form()
            token = req.forms.getunicode("csrf") or req.headers.get("X-CSRF-Token", "")
            if not token or not _eq(token, s.csrf):
                web.log.warning("refused %s %s from %s: missing or wrong CSRF token", req.method, req.path,
                                web.client_ip())
                raise bottle.HTTPError(403, web.t("error.csrf"))

    def error_page(err: bottle.HTTPError):
        code = err.status_code
        if code >= 500:
            if err.exception:
                web.log.error("%s %s failed", req.method, req.path,
                              exc_info=(type(err.exception), err.exception, err.exception.__traceback__))
            msg = web.t("error.500")
        elif code in (404, 405) or not (isinstance(err.body, str) and err.body):
            msg = web.t(f"error.{code}") if f"error.{code}" in i18n.STRINGS["en"] else err.status_line
        else:
            msg = err.body          # our own message, set where the error was raised
        if "json" in req.headers.get("Accept", "") or req.path.startswith(API_PREFIX):
            resp.content_type = "application/json; charset=utf-8"
            return json.dumps({"error": msg, "status": err.status_code}, ensure_ascii=False)
        return web.render("error.html", status=err.status_code, message=msg)

    for code in (400, 401, 403, 404, 405, 413, 429, 500, 503):
        app.error(code)(error_page)

    @app.get("/static/<path:path>")
    def static(path):
        r = bottle.static_file(path, root=web.static_root)
        r.set_header("Cache-Control", "public, max-age=3600")
        return r

    @app.get("/healthz")
    def healthz():
        web.db().execute("SELECT 1").fetchone()
        return web.json({"status": "ok"})

    @app.get("/lang/<code>")
    def set_lang(code):
        if code in i18n.LANGUAGES:
            resp.set_cookie(LANG_COOKIE, code, path="/", max_age=365 * 86400, samesite="lax", secure=web.secure)
        bottle.redirect(safe_next(req.query.getunicode("next")))

    def login_form(status=200, error="", name="", notice=""):
        # No session before login: the form's CSRF token is a random cookie the form must echo.
        token = req.get_cookie(LOGIN_COOKIE)
        if not token or len(token) > 64:
            token = sessions.new_token()
            resp.set_cookie(LOGIN_COOKIE, token, path="/login", httponly=True, samesite="lax", secure=web.secure)
        resp.status = status
        nxt = req.query.getunicode("next") or req.forms.getunicode("next")
        return web.render("login.html", error=error, name=name, notice=notice, csrf=token, next=safe_next(nxt))

    @app.get("/login")
    def login_get():
        if web.user():
            bottle.redirect(safe_next(req.query.getunicode("next")))
        notice = req.query.getunicode("m") or ""
        return login_form(notice=web.t(notice) if notice in ("logout.done", "login.expired", "login.ended") else "")

    @app.post("/login")
    def login_post():
        conn, w = web.db(), web.cfg["web"]
        parse_form()
        name = (req.forms.getunicode("user") or "").strip()
        password = req.forms.getunicode("password") or ""
        token = req.get_cookie(LOGIN_COOKIE) or ""
        if not token or not _eq(req.forms.getunicode("csrf") or "", token):
            return login_form(403, web.t("error.csrf"), name)
        ip = web.client_ip()
        limits = auth.throttle_keys(name, ip, w["login_max_failures"], w["login_max_failures_per_address"])
        # Charged before the check, atomically: a burst cannot get more than the limit checked.
        wait = auth.begin_attempt(conn, limits, w["login_lockout_seconds"])
        if wait > 0:
            web.log.warning("login for %r from %s refused: locked out for %.0f s", name, ip, wait)
            return login_form(429, web.t("login.locked", minutes=max(1, -(-int(wait) // 60))), name)
        try:
            ok = bool(name) and auth.authenticate(conn, name, password)
        except auth.UserBusy:
            auth.refund_attempt(conn, limits)
            web.log.warning("login for %r from %s not checked: too many password checks at once", name, ip)
            resp.set_header("Retry-After", "5")
            return login_form(503, web.t("login.busy"), name)
        if not ok:
            web.log.warning("failed login for %r from %s", name, ip)
            return login_form(401, web.t("login.failed"), name)
        auth.refund_attempt(conn, limits, succeeded=True)
        sessions.prune(conn, web.session_ttl, web.session_max_age)
        old = web.session()
        if old:
            sessions.drop(conn, old.sid)
        new = sessions.create(conn, user=name)          # always a fresh id: no session fixation
        web.set_session_cookie(new.sid)
        resp.delete_cookie(LOGIN_COOKIE, path="/login")
        web.log.info("user %r logged in from %s", name, ip)
        bottle.redirect(safe_next(req.forms.getunicode("next")), 303)

    @app.post("/logout")
    def logout():
        s = web.session()
        if s:
            sessions.drop(web.db(), s.sid)
            web.log.info("user %r logged out", s.user)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        bottle.redirect("/login?m=logout.done", 303)

    @app.get("/")
    @web.login_required
    def home():
        return web.render("home.html")


def _eq(a: str, b: str) -> bool:
    import hmac
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))
