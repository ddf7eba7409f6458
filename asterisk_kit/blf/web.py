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

from ..web.perms import dial_allowed, viewer_perms
from .hub import Hub
from .missed import MissedCalls
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
        "blf.kiosk": "Табло (киоск)",
        "blf.kiosk_exit": "Выйти из режима табло (вернуться к обычной панели)",
        "blf.legend": "≥ — время известно не точно: панель увидела звонок уже идущим (после переподключения); "
                      "→ исходящий, ← входящий",
        "blf.dnd": "не беспокоить",
        "blf.in": "входящий",
        "blf.out": "исходящий",
        "blf.via_queue": "очередь {q}",
        "blf.hidden_number": "номер скрыт",
        "blf.queues": "Очереди",
        "blf.waiting": "Ожидают",
        "blf.members": "Операторы",
        "blf.answered": "Отвечено сегодня",
        "blf.abandoned": "Потеряно сегодня",
        "blf.no_waiting": "никто не ждёт",
        "blf.paused": "пауза",
        "blf.in_call": "в разговоре",
        "blf.available": "свободен",
        "blf.logged_out": "не в сети",
        "blf.parked": "Припаркованные звонки",
        "blf.no_parked": "нет припаркованных звонков",
        "blf.parking_unavailable": "Парковка недоступна: у AMI-пользователя панели нет write = call (см. docs/blf.md)",
        "blf.lot": "место {space} ({lot})",
        "blf.missed": "Пропущенные сегодня",
        "blf.no_missed": "пропущенных нет",
        "blf.missed_unavailable": "CDR недоступен",
        "blf.call_back": "Перезвонить",
        "blf.act.dial": "Позвонить", "blf.act.dial_title": "Позвонить на {x} (сначала зазвонит ваш телефон)",
        "blf.act.transfer": "Перевести сюда", "blf.act.transfer_title": "Перевести ваш звонок на {x}",
        "blf.act.pickup": "Перехватить", "blf.act.pickup_title": "Перехватить звонок, звонящий на {x}",
        "blf.act.hangup": "Завершить", "blf.act.hangup_title": "Завершить ваш звонок",
        "blf.act.pause": "Пауза", "blf.act.pause_title": "Поставить {x} на паузу в очереди {q}",
        "blf.act.unpause": "Снять паузу", "blf.act.unpause_title": "Снять {x} с паузы в очереди {q}",
        "blf.act.number": "Номер", "blf.act.dial_number": "Позвонить на набранный номер",
        "blf.act.drag": "Перетащите свою кнопку на номер, чтобы перевести звонок",
        "blf.tab.keys": "Абоненты",
        "blf.tab.queues": "Очереди и парковка",
        "blf.tab.missed": "Пропущенные",
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
        "blf.kiosk": "Wall screen (kiosk)",
        "blf.kiosk_exit": "Leave the wall screen mode (back to the normal panel)",
        "blf.legend": "≥ time not exact: the panel found the call already going (after a reconnect); "
                      "→ outgoing, ← incoming",
        "blf.dnd": "do not disturb",
        "blf.in": "incoming",
        "blf.out": "outgoing",
        "blf.via_queue": "queue {q}",
        "blf.hidden_number": "number hidden",
        "blf.queues": "Queues",
        "blf.waiting": "Waiting",
        "blf.members": "Members",
        "blf.answered": "Answered today",
        "blf.abandoned": "Abandoned today",
        "blf.no_waiting": "nobody waiting",
        "blf.paused": "paused",
        "blf.in_call": "in a call",
        "blf.available": "available",
        "blf.logged_out": "logged out",
        "blf.parked": "Parked calls",
        "blf.no_parked": "no parked calls",
        "blf.parking_unavailable": "Parking unavailable: the panel's AMI user lacks write = call (see docs/blf.md)",
        "blf.lot": "space {space} ({lot})",
        "blf.missed": "Missed today",
        "blf.no_missed": "no missed calls",
        "blf.missed_unavailable": "CDR unavailable",
        "blf.call_back": "Call back",
        "blf.act.dial": "Dial", "blf.act.dial_title": "Call {x} (your own phone rings first)",
        "blf.act.transfer": "Transfer here", "blf.act.transfer_title": "Transfer your call to {x}",
        "blf.act.pickup": "Pick up", "blf.act.pickup_title": "Pick up the call ringing on {x}",
        "blf.act.hangup": "Hang up", "blf.act.hangup_title": "End your call",
        "blf.act.pause": "Pause", "blf.act.pause_title": "Pause {x} in queue {q}",
        "blf.act.unpause": "Unpause", "blf.act.unpause_title": "Unpause {x} in queue {q}",
        "blf.act.number": "Number", "blf.act.dial_number": "Call the number typed",
        "blf.act.drag": "Drag your key onto a number to transfer your call there",
        "blf.tab.keys": "Extensions",
        "blf.tab.queues": "Queues and parking",
        "blf.tab.missed": "Missed",
        "state.idle": "free", "state.inuse": "talking", "state.busy": "busy",
        "state.unavailable": "unavailable", "state.ringing": "ringing", "state.inuse_ringing": "talking + ringing",
        "state.hold": "on hold", "state.inuse_hold": "talking + hold", "state.removed": "removed",
        "state.deactivated": "deactivated", "state.unknown": "unknown",
        "presence.away": "away", "presence.xa": "extended away", "presence.dnd": "do not disturb",
        "presence.chat": "free to chat", "presence.unavailable": "unavailable",
    },
}

_hubs: dict[int, Hub] = {}    # id(web app) -> its hub
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
    missed = MissedCalls(web.cfg, web.log)

    def labels():
        stale = ("ami", "nodaemon", "stopped", "cache", "offline")
        keys = ([f"state.{s}" for s in SLUGS] + [f"blf.stale.{k}" for k in stale] + ["blf.live", "blf.other_group"]
                + [f"presence.{p}" for p in PRESENCE])
        keys += [k for k in STRINGS["en"] if k.startswith("blf.") and k not in keys]
        return {k: web.t(k) for k in keys}

    def perms():
        see, groups = viewer_perms(web, web.user())
        return see, groups

    @app.get("/blf")
    @app.get("/blf/wall")
    @viewer
    def blf_page():
        see, groups = perms()
        st = _only_groups(hub_for(web).state(see), groups)
        kiosk = req.path == "/blf/wall" or req.query.get("kiosk") == "1"
        return web.render("blf.html", st=st, groups=_grouped(st, web.t("blf.other_group")),
                          labels=json.dumps(labels(), ensure_ascii=False), kiosk=kiosk,
                          wall=kiosk or req.query.get("wall") == "1", anonymous=not web.user(),
                          dial=bool(web.cfg["blf"]["action_ami_user"]) and dial_allowed(web, web.user()),
                          actions=bool(web.cfg["blf"]["action_ami_user"]))

    @app.get("/blf.json")
    @viewer
    def blf_json():
        see, groups = perms()
        return web.json(_only_groups(hub_for(web).state(see), groups))

    @app.get("/blf/missed.json")
    @viewer
    def blf_missed():
        see, groups = perms()
        st = _only_groups(hub_for(web).state(see), groups)
        keys = {e["exten"] for e in st["extensions"]}
        data = missed.get(keys, see)
        data["extensions"] = {x: v for x, v in data["extensions"].items() if x in keys}
        return web.json(data)

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
        see, groups = perms()
        return _stream(hub, see, groups)


def _stream(hub: Hub, see_numbers: bool, groups):
    import time
    try:
        seq, first = hub.first(see_numbers)
        yield _filter_stream(first, groups)
        end = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < end:
            # the same bytes for every viewer of a privacy class: encoded once by the hub, not per stream
            seq, data = hub.wait(seq, KEEPALIVE, see_numbers)
            yield _filter_stream(data, groups) if data is not None else b": keepalive\n\n"
    finally:
        hub.leave()


def _only_groups(st: dict, groups) -> dict:
    """The state limited to a viewer's groups (None: all): extensions of other groups left out."""
    if groups is None:
        return st
    out = dict(st)
    out["extensions"] = [e for e in st["extensions"] if e.get("group") in groups]
    if "changed" in st:
        out["changed"] = [e for e in st["changed"] if e.get("group") in groups]
    return out


def _filter_stream(data: bytes, groups) -> bytes:
    """Viewers limited to some groups get the shared bytes re-encoded without the others (rare path)."""
    if groups is None:
        return data
    out = []
    for msg in data.split(b"\n\n"):
        if not msg:
            continue
        head, sep, body = msg.rpartition(b"data: ")
        if not sep:
            out.append(msg + b"\n\n")
            continue
        d = json.loads(body)
        if "extensions" in d:
            d = _only_groups(d, groups)
        elif "changed" in d:
            d["changed"] = [e for e in d["changed"] if e.get("group") in groups]
        out.append(head + b"data: " + json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n")
    return b"".join(out)


def _grouped(st: dict, other: str):
    by: dict[str, list[dict]] = {g: [] for g in st["groups"]}
    rest: list[dict] = []
    for e in st["extensions"]:
        (by[e["group"]] if e.get("group") in by else rest).append(e)
    out = [(g, by[g]) for g in st["groups"]]
    if rest or not out:
        out.append((other if st["groups"] else "", rest))
    return out
