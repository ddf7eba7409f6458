"""The BLF page `/blf`, its JSON `/blf.json` and its live stream `/blf/events` (Server-Sent Events).

All three read the Hub (one memcached poller and one in-memory board per web process), never AMI.
Login is required unless the viewer's address is in [blf] anonymous_networks (wall screens). Each
SSE stream holds one server thread while open: the number of streams is capped ([blf] max_viewers,
beyond that 503 and the browser retries), every stream ends after STREAM_SECONDS (the browser reconnects at once and the
login is checked again), and a comment line every KEEPALIVE seconds finds dead viewers.
"""
from __future__ import annotations

import json
import threading

import bottle

from .hub import Hub
from .states import SLUGS, parse_groups

PRESENCE = ("away", "xa", "dnd", "chat", "unavailable")

STREAM_SECONDS = 300
KEEPALIVE = 5

STRINGS = {
    "ru": {
        "nav.blf": "Панель BLF",
        "blf.title": "Панель BLF",
        "blf.search": "Поиск: номер или имя",
        "blf.state_filter": "Состояние",
        "blf.all": "все",
        "blf.free": "свободные",
        "blf.busy_any": "занятые",
        "blf.other_group": "Остальные",
        "blf.count": "Абонентов: {n}",
        "blf.live": "Данные актуальны",
        "blf.stale.ami": "Нет связи с Asterisk — состояния неизвестны",
        "blf.stale.nodaemon": "Служба BLF не работает — данные устарели",
        "blf.stale.stopped": "Служба BLF остановлена — данные устарели",
        "blf.stale.cache": "Нет доступа к memcached — данные устарели",
        "blf.stale.offline": "Нет связи с сервером — данные устарели",
        "blf.empty": "Нет ни одного абонента (проверьте, что служба BLF запущена).",
        "blf.wall": "Режим табло",
        "state.idle": "свободен", "state.inuse": "разговаривает", "state.busy": "занят",
        "state.unavailable": "недоступен", "state.ringing": "звонит", "state.inuse_ringing": "разговор + звонок",
        "state.hold": "на удержании", "state.inuse_hold": "разговор + удержание", "state.removed": "удалён",
        "state.deactivated": "отключён", "state.unknown": "неизвестно",
        "presence.away": "нет на месте", "presence.xa": "давно нет", "presence.dnd": "не беспокоить",
        "presence.chat": "готов общаться", "presence.unavailable": "недоступен",
    },
    "en": {
        "nav.blf": "BLF panel",
        "blf.title": "BLF panel",
        "blf.search": "Search: number or name",
        "blf.state_filter": "State",
        "blf.all": "all",
        "blf.free": "free",
        "blf.busy_any": "busy",
        "blf.other_group": "Others",
        "blf.count": "Extensions: {n}",
        "blf.live": "Live",
        "blf.stale.ami": "No connection to Asterisk: states unknown",
        "blf.stale.nodaemon": "The BLF service is not running: data is stale",
        "blf.stale.stopped": "The BLF service is stopped: data is stale",
        "blf.stale.cache": "memcached unreachable: data is stale",
        "blf.stale.offline": "No connection to the server: data is stale",
        "blf.empty": "No extension yet (check that the BLF service is running).",
        "blf.wall": "Wall screen",
        "state.idle": "free", "state.inuse": "talking", "state.busy": "busy",
        "state.unavailable": "unavailable", "state.ringing": "ringing", "state.inuse_ringing": "talking + ringing",
        "state.hold": "on hold", "state.inuse_hold": "talking + hold", "state.removed": "removed",
        "state.deactivated": "deactivated", "state.unknown": "unknown",
        "presence.away": "away", "presence.xa": "extended away", "presence.dnd": "do not disturb",
        "presence.chat": "free to chat", "presence.unavailable": "unavailable",
    },
}

_hubs = {}
_hubs_lock = threading.Lock()


def hub_for(web) -> Hub:
    with _hubs_lock:
        h = _hubs.get(id(web))
        if h is None:
            h = _hubs[id(web)] = Hub(web.cfg, web.log)
    h.ensure_started()
    return h


def register(web) -> None:
    app, req, resp = web.app, bottle.request, bottle.response
    web.strings(STRINGS)
    web.nav("/blf", "nav.blf")
    web.group_titles = lambda: [t for t, _ in parse_groups(web.cfg["blf"]["groups"])]
    nets = web.cfg["blf"]["anonymous_networks"]
    limit = web.cfg["blf"]["max_viewers"]
    viewer = web.login_required(allow=lambda w: bool(nets) and w.ip_in(nets))
    from . import actionweb
    actionweb.register(web)     # POST /blf/action, GET /blf/permissions

    def labels():
        keys = [f"state.{s}" for s in SLUGS] + [f"blf.stale.{k}" for k in ("ami", "nodaemon", "stopped", "cache",
                                                                              "offline")] + ["blf.live", "blf.other_group"] + [f"presence.{p}" for p in PRESENCE]
        return {k: web.t(k) for k in keys}

    @app.get("/blf")
    @viewer
    def blf_page():
        st = hub_for(web).state()
        groups = _grouped(st, web.t("blf.other_group"))
        return web.render("blf.html", st=st, groups=groups, labels=json.dumps(labels(), ensure_ascii=False),
                          wall=req.query.get("wall") == "1", anonymous=not web.user())

    @app.get("/blf.json")
    @viewer
    def blf_json():
        return web.json(hub_for(web).state())

    @app.get("/blf/events")
    @viewer
    def blf_events():
        hub = hub_for(web)
        if not hub.enter(limit):
            web.log.warning("BLF: %d live viewers already, refusing %s", limit, web.client_ip())
            resp.status = 503
            resp.set_header("Retry-After", "10")
            return "too many viewers\n"
        resp.content_type = "text/event-stream; charset=utf-8"
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("X-Accel-Buffering", "no")      # nginx: do not buffer the stream
        return _stream(hub)


def _stream(hub: Hub):
    import time
    try:
        seq, first = hub.first()
        yield first
        end = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < end:
            # the same bytes for every viewer: encoded once by the hub, not per stream
            seq, data = hub.wait(seq, KEEPALIVE)
            yield data if data is not None else b": keepalive\n\n"
    finally:
        hub.leave()


def _grouped(st: dict, other: str):
    by = {g: [] for g in st["groups"]}
    rest = []
    for e in st["extensions"]:
        (by[e["group"]] if e.get("group") in by else rest).append(e)
    out = [(g, by[g]) for g in st["groups"]]
    if rest or not out:
        out.append((other if st["groups"] else "", rest))
    return out
