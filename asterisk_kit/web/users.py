"""Admin pages: who may do what on the panel (/users) and the panel's audit log (/users/audit).

Only users with the `admin` permission see or change them (403 for the others, not even a menu
entry). Every change is logged with the admin's name.
"""
from __future__ import annotations

import time

import bottle

from . import audit
from . import perms as P

STRINGS = {
    "ru": {
        "nav.users": "Пользователи",
        "users.title": "Пользователи и права",
        "users.extension": "Свой номер",
        "users.groups": "Группы BLF",
        "users.all_groups": "все группы",
        "users.save": "Сохранить",
        "users.saved": "Права {name} сохранены",
        "users.audit": "Журнал действий",
        "users.forbidden": "Эта страница только для администратора",
        "audit.at": "Когда", "audit.user": "Кто", "audit.action": "Действие", "audit.target": "Цель",
        "audit.result": "Результат", "audit.address": "Адрес", "audit.empty": "Действий ещё не было",
        "perm.view": "видеть панель", "perm.dial": "звонить", "perm.transfer": "переводить",
        "perm.pickup": "перехватывать", "perm.hangup": "завершать звонки", "perm.queue": "пауза в очереди",
        "perm.queue_others": "пауза других", "perm.numbers": "видеть номера", "perm.admin": "администратор",
    },
    "en": {
        "nav.users": "Users",
        "users.title": "Users and permissions",
        "users.extension": "Own extension",
        "users.groups": "BLF groups",
        "users.all_groups": "all groups",
        "users.save": "Save",
        "users.saved": "Permissions of {name} saved",
        "users.audit": "Action log",
        "users.forbidden": "This page is for the admin only",
        "audit.at": "When", "audit.user": "Who", "audit.action": "Action", "audit.target": "Target",
        "audit.result": "Result", "audit.address": "Address", "audit.empty": "No action yet",
        "perm.view": "view the panel", "perm.dial": "dial", "perm.transfer": "transfer",
        "perm.pickup": "pick up", "perm.hangup": "hang up", "perm.queue": "queue pause",
        "perm.queue_others": "pause others", "perm.numbers": "see numbers", "perm.admin": "admin",
    },
}


def register(web) -> None:
    app, req = web.app, bottle.request
    web.strings(STRINGS)
    web.nav("/users", "nav.users", visible=lambda w: _is_admin(w))

    def admin_only():
        if not _is_admin(web):
            web.log.warning("user %r from %s refused %s %s: not an admin", web.user(), web.client_ip(), req.method,
                            req.path)
            raise bottle.HTTPError(403, web.t("users.forbidden"))

    def groups_configured():
        return web.group_titles()

    def page(error="", notice="", status=200):
        bottle.response.status = status
        return web.render("users.html", users=P.all_users(web.db()), permissions=P.PERMISSIONS,
                          groups=groups_configured(), error=error, notice=notice)

    @app.get("/users")
    @web.login_required
    def users_page():
        admin_only()
        return page()

    @app.post("/users/<name>")
    @web.login_required
    def users_save(name):
        admin_only()
        f = req.forms.decode()         # UTF-8 values (group titles may be Cyrillic)
        groups = ["*"] if f.get("all_groups") else f.getall("group")
        try:
            p = P.update(web.db(), name, extension=f.get("extension") or "",
                         only=f.getall("perm"), groups=groups)
        except P.PermsError as e:
            return page(error=str(e), status=400)
        web.log.info("admin %r set %r: extension %r, %s, groups %s", web.user(), name, p.extension,
                     ",".join(sorted(p.allowed)), P.cur_groups_text(p))
        return page(notice=web.t("users.saved", name=name))

    @app.get("/users/audit")
    @web.login_required
    def audit_page():
        admin_only()
        rows = audit.recent(web.db(), 500)
        return web.render("audit.html", rows=rows,
                          when=lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)))


def _is_admin(web) -> bool:
    name = web.user()
    if not name:
        return False
    p = P.get(web.db(), name)
    return p is not None and p.has("admin")
