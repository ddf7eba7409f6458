"""The panel's action endpoint (POST /blf/action, JSON, CSRF header) and the user's own permissions
(GET /blf/permissions, for the page's buttons). Login required; wall screens of [blf]
anonymous_networks may view but never act."""
from __future__ import annotations

import json
import threading

import bottle

from ..web import perms as P
from . import privacy
from .actions import ActionError, Panel

MAX_BODY = 4096
STRINGS = {
    "ru": {
        "panel.bad_request": "Неверный запрос", "panel.bad_target": "Номер: только цифры, * # +",
        "panel.disabled": "Действия панели не настроены",
        "panel.rate_limited": "Слишком много действий, подождите минуту",
        "panel.forbidden": "Нет права на это действие", "panel.forbidden_target": "Этот номер вне ваших групп",
        "panel.no_extension": "Вам не назначен свой номер", "panel.no_call": "Нет звонка",
        "panel.not_ringing": "Этот номер не звонит", "panel.ami_failed": "Asterisk не выполнил действие",
    },
    "en": {
        "panel.bad_request": "Bad request", "panel.bad_target": "Number: digits, * # + only",
        "panel.disabled": "Panel actions are not configured", "panel.rate_limited": "Too many actions, wait a minute",
        "panel.forbidden": "You may not do this", "panel.forbidden_target": "This number is outside your groups",
        "panel.no_extension": "You have no extension of your own", "panel.no_call": "No call",
        "panel.not_ringing": "That extension is not ringing", "panel.ami_failed": "Asterisk did not do it",
    },
}

_panels: dict = {}
_lock = threading.Lock()


def panel_for(web) -> Panel:
    with _lock:
        p = _panels.get(id(web))
        if p is None:
            p = _panels[id(web)] = Panel(web.cfg, web.log)
        return p


def register(web) -> None:
    app, req = web.app, bottle.request
    web.strings(STRINGS)

    @app.get("/blf/permissions")
    @web.login_required
    def my_permissions():
        p = P.get(web.db(), web.user() or "")
        data = p.public() if p else {}
        data["actions_enabled"] = panel_for(web).enabled
        data["queue_interface"] = web.cfg["blf"]["queue_interface"]    # the page maps queue members to keys
        return web.json(data)

    @app.post("/blf/action")
    @web.login_required
    def action():
        perms = P.get(web.db(), web.user() or "")
        try:
            raw = req.body.read(MAX_BODY + 1)
            if len(raw) > MAX_BODY:
                raise ActionError(413, "panel.bad_request", "body too large")
            try:
                data = json.loads(raw.decode("utf-8") or "null")
            except (UnicodeError, ValueError):
                raise ActionError(400, "panel.bad_request", "body is not JSON") from None
            answer = panel_for(web).perform(web.db(), perms, data, web.client_ip())
        except ActionError as e:
            return web.json({"ok": False, "error": web.t(e.key), "reason": e.key, "status": e.status}, e.status)
        return web.json(privacy.redact(answer, perms))
