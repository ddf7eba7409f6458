"""The /status page: the same overview as `asterisk-kit status`, for the logins in [web] admins."""
from __future__ import annotations

import bottle

STRINGS = {
    "ru": {"status.title": "Состояние", "status.ok": "в порядке", "status.problem": "ПРОБЛЕМА",
           "status.denied": "Страница состояния только для администраторов ([web] admins)."},
    "en": {"status.title": "Status", "status.ok": "ok", "status.problem": "PROBLEM",
           "status.denied": "The status page is for administrators only ([web] admins)."},
}


def register(web) -> None:
    web.strings(STRINGS)
    admins = set(web.cfg["web"]["admins"])
    if admins:
        web.nav("/status", "status.title")

    @web.app.get("/status")
    @web.login_required
    def status_page():
        if web.user() not in admins:
            raise bottle.HTTPError(403, web.t("status.denied"))
        from .overview import collect
        o = collect(web.cfg)
        if "json" in bottle.request.headers.get("Accept", ""):
            return web.json({"rows": o["rows"], "problems": o["problems"], "generated": o["generated"]})
        return web.render("status.html", o=o)
