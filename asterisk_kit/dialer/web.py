"""The autodialer's campaign pages, behind the login: `/dialer` (the campaigns: state, numbers, last run,
next run; create one) and `/dialer/c/<id>` (settings, weekly windows, pause / resume / copy / archive,
run now / stop). Every form answers with a 303 (post/redirect/get): errors at the top linking to their
field, typed input kept. The numbers, run and results pages register from their own modules (end of
`register`)."""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional

import bottle

from .. import storage
from . import campaigns, migrate, schedule, soundlist, store
from .campaign_strings import STRINGS as CAMPAIGN_STRINGS
from .kick import kick
from .settings import callerid_list

NAME_MAX = 80
# Form field (= input id = error key) -> label key; the retry fields are RETRY_FIELDS.
FIELD_LABELS = {"name": "camp.name", "sound": "camp.message", "ivr_prompt": "camp.ivr_prompt",
                "ivr_digit": "camp.ivr_digit", "connect_to": "camp.connect_to", "callerid": "camp.callerid",
                "bundle": "camp.bundle", "pause": "camp.pause", "max_in_progress": "camp.max_in_progress",
                "wait_time": "camp.wait_time", "optout_digit": "camp.optout_digit"}
RETRY_FIELDS = [f"retry_{o}_{x}" for o in campaigns.OUTCOMES for x in ("n", "min")]
SETTINGS_FIELDS = [f for f in FIELD_LABELS if f != "name"] + RETRY_FIELDS
# Stored setting keys the form owns (others, e.g. a list's legacy retry_seconds, are kept as they are).
FORM_KEYS = set(SETTINGS_FIELDS) - set(RETRY_FIELDS) | {"retries"}
# Outcome counts of a run in this order (not finished yet: its state).
RESULT_ORDER = (*store.RESULTS, "spooled", "pending")
STATE_ACTIONS = {"pause": ("paused", "camp.paused"), "resume": ("active", "camp.resumed"),
                 "archive": ("archived", "camp.archived"), "unarchive": ("paused", "camp.unarchived")}

# Strings shared with the numbers and run pages (their modules register their own as well).
STRINGS = {
    "ru": {
        "nav.dialer": "Автообзвон",
        "dialer.number": "Номер",
        "dialer.off": "выкл.",
        "dialer.runs": "Запуски",
        "dialer.run_now": "Запустить сейчас",
        "dialer.run_now.confirm": "Начать обзвон всех номеров списка сейчас?",
        "dialer.stop": "Остановить",
        "dialer.stop.confirm": "Остановить обзвон? Ещё не отправленные звонки будут отменены.",
        "dialer.busy": "Уже идёт запуск {id}.",
        "dialer.no_phones": "Список номеров пуст — звонить некому.",
        "dialer.run": "Запуск",
        "dialer.when": "Начат",
        "dialer.trigger": "Как",
        "dialer.trigger.schedule": "по расписанию",
        "dialer.trigger.manual": "вручную",
        "dialer.status": "Состояние",
        "dialer.answered": "Ответили",
        "dialer.unanswered": "Без ответа",
        "dialer.open": "В работе",
        "dialer.no_runs": "Запусков ещё не было.",
        "day.0": "Пн",
        "day.1": "Вт",
        "day.2": "Ср",
        "day.3": "Чт",
        "day.4": "Пт",
        "day.5": "Сб",
        "day.6": "Вс",
        "status.queued": "в очереди",
        "status.running": "идёт",
        "status.stopping": "останавливается",
        "status.done": "завершён",
        "status.stopped": "остановлен",
        "status.missed": "пропущен",
        "status.failed": "прерван: ошибка",
        "result.answered": "ответил",
        "result.busy": "занято",
        "result.no_answer": "нет ответа",
        "result.failed": "ошибка",
        "result.withdrawn": "отменён",
        "result.pending": "ожидает",
        "result.spooled": "звоним",
    },
    "en": {
        "nav.dialer": "Autodialer",
        "dialer.number": "Number",
        "dialer.off": "off",
        "dialer.runs": "Runs",
        "dialer.run_now": "Run now",
        "dialer.run_now.confirm": "Call every number of the list now?",
        "dialer.stop": "Stop",
        "dialer.stop.confirm": "Stop the run? Calls not yet handed to the PBX are cancelled.",
        "dialer.busy": "Run {id} is already in progress.",
        "dialer.no_phones": "The list is empty: nobody to call.",
        "dialer.run": "Run",
        "dialer.when": "Started",
        "dialer.trigger": "How",
        "dialer.trigger.schedule": "scheduled",
        "dialer.trigger.manual": "by hand",
        "dialer.status": "Status",
        "dialer.answered": "Answered",
        "dialer.unanswered": "Not answered",
        "dialer.open": "In progress",
        "dialer.no_runs": "No runs yet.",
        "day.0": "Mon",
        "day.1": "Tue",
        "day.2": "Wed",
        "day.3": "Thu",
        "day.4": "Fri",
        "day.5": "Sat",
        "day.6": "Sun",
        "status.queued": "queued",
        "status.running": "running",
        "status.stopping": "stopping",
        "status.done": "done",
        "status.stopped": "stopped",
        "status.missed": "missed",
        "status.failed": "failed",
        "result.answered": "answered",
        "result.busy": "busy",
        "result.no_answer": "no answer",
        "result.failed": "failed",
        "result.withdrawn": "withdrawn",
        "result.pending": "waiting",
        "result.spooled": "calling",
    },
}



def campaign_or_404(conn, cid: int):
    """The campaign row, or a 404 page: every campaign-scoped page starts here."""
    camp = store.campaign(conn, cid)
    if camp is None:
        raise bottle.HTTPError(404)
    return camp

def register(web) -> None:
    app, req = web.app, bottle.request
    web.strings(STRINGS)
    web.strings(CAMPAIGN_STRINGS)
    web.nav("/dialer", "nav.dialer")
    conn = web.db
    # Imports of 200 000 numbers (several MB) are one form field or file: bottle must keep such a part
    # whole in memory (a part above MEMFILE_MAX is spooled and dropped from forms).
    bottle.BaseRequest.MEMFILE_MAX = max(bottle.BaseRequest.MEMFILE_MAX, web.cfg["dialer"]["import_max_bytes"] + 65536)
    storage.migrate(conn(), "dialer", store.MIGRATIONS)

    def next_run(c, camp, at) -> Optional[str]:
        """"Tue 10:00" in the PBX's zone: when the campaign's next window opens (None: no schedule)."""
        when = schedule.next_window(store.windows(c, camp["id"]), at)
        return f"{web.t(f'day.{when.weekday()}')} {when:%H:%M}" if when else None

    def label(field: str) -> str:
        m = re.fullmatch(r"retry_(\w+)_(n|min)", field)
        if m:
            unit = "camp.retry_n" if m.group(2) == "n" else "camp.unit.minutes"
            return f"{web.t('camp.retries')} · {web.t('camp.retry.' + m.group(1))} ({web.t(unit)})"
        return web.t(FIELD_LABELS[field])

    def message(e: campaigns.BadSetting) -> str:
        if e.key == "campaign.int.bad":
            lo, hi = campaigns.field_range(e.field)
            text = web.t(e.key, lo=lo, hi=hi)
        elif e.key == "digit.bad":
            text = web.t("camp.digit.bad")
        else:
            text = web.t(e.key) if e.key in CAMPAIGN_STRINGS["en"] else str(e)
        return web.t("camp.field", label=label(e.field), msg=text)

    def sounds(c, stored: Dict[str, Any]):
        """The messages to choose from; a stored one no longer listed stays choosable (not lost)."""
        out = list(soundlist.choices(c, web.cfg))
        for key in ("sound", "ivr_prompt"):
            v = stored.get(key)
            if v and v not in [value for value, _ in out]:
                out.append((v, v))
        return out

    # ---- the list ------------------------------------------------------------------------------

    @app.get("/dialer")
    @web.login_required
    def campaigns_page():
        c, f = conn(), web.flashed()
        show_archived = req.query.get("archived") == "1"
        at = schedule.now(web.cfg)
        rows = []
        for camp in store.campaigns(c, archived=show_archived):
            last = store.runs(c, 1, campaign_id=camp["id"])
            rows.append({"c": camp, "last": last[0] if last else None,
                         "counts": store.outcome_counts(c, last[0]["id"]) if last else {},
                         "next": next_run(c, camp, at) if camp["state"] == "active" else None})
        return web.render("dialer_campaigns.html", rows=rows, order=RESULT_ORDER, show_archived=show_archived,
                          tz=schedule.tz_name(web.cfg),
                          errors=f["errors"], form=f["form"], notice=f["notice"])

    @app.post("/dialer/campaigns")
    @web.login_required
    def create():
        name = " ".join((req.forms.getunicode("name") or "").split())
        error = "camp.name.empty" if not name else "camp.name.long" if len(name) > NAME_MAX else ""
        if error:
            web.redirect_with("/dialer", errors={"name": web.t(error)},
                              form={"name": req.forms.getunicode("name") or ""})
        cid = store.create_campaign(conn(), name)
        web.log.info("dialer: %s created campaign %d %r", web.user(), cid, name)
        web.redirect_with(f"/dialer/c/{cid}", notice=web.t("camp.created", name=name))

    # ---- one campaign --------------------------------------------------------------------------

    @app.get("/dialer/c/<cid:int>")
    @web.login_required
    def campaign_page(cid):
        camp = campaign_or_404(conn(), cid)
        c, f = conn(), web.flashed()
        stored = json.loads(camp["settings"] or "{}")
        values = campaigns.form_values(web.cfg, stored)
        values["name"] = camp["name"]
        values.update({k: v for k, v in f["form"].items() if k in values or k.startswith(("start", "end"))})
        win = store.windows(c, cid)
        times = {}
        for d in range(7):
            start, end = win[d] or (None, None)
            times[f"start{d}"], times[f"end{d}"] = f["form"].get(f"start{d}", start or ""), \
                f["form"].get(f"end{d}", end or "")
        at = schedule.now(web.cfg)
        return web.render(
            "dialer_campaign.html", camp=camp, v=values, times=times, defaults=campaigns.defaults(web.cfg),
            sounds=sounds(c, stored), callerids=callerid_list(web.cfg["dialer"]), outcomes=campaigns.OUTCOMES,
            pbx_cap=web.cfg["dialer"]["max_in_progress"], tz=schedule.tz_name(web.cfg),
            next=next_run(c, camp, at) if camp["state"] == "active" else None,
            numbers=store.phone_count(c, cid), active=store.active_run(c, cid), runs=store.runs(c, 10, cid),
            errors=f["errors"], form=f["form"], notice=f["notice"])

    @app.post("/dialer/c/<cid:int>/settings")
    @web.login_required
    def save_settings(cid):
        camp = campaign_or_404(conn(), cid)
        c = conn()
        form = {k: req.forms.getunicode(k) or "" for k in ("name", *SETTINGS_FIELDS)}
        stored = json.loads(camp["settings"] or "{}")
        out, bad = campaigns.check_form(web.cfg, form)
        errors = {}
        name = " ".join(form["name"].split())
        if not name or len(name) > NAME_MAX:
            errors["name"] = web.t("camp.name.empty" if not name else "camp.name.long")
        allowed = [value for value, _ in sounds(c, stored)]
        for key in ("sound", "ivr_prompt"):
            if key not in bad and out.get(key) and out[key] not in allowed:
                bad[key] = campaigns.BadSetting(key, "camp.sound.choice", "not one of the list")
        # In the form's order, so the list at the top reads like the page.
        errors.update({k: message(bad[k]) for k in SETTINGS_FIELDS if k in bad})
        if errors:
            web.redirect_with(f"/dialer/c/{cid}", errors=errors, form=form)
        # Retries left as shown (the [dialer] defaults) stay unset: a list from before campaigns keeps its
        # retry_time in seconds instead of the form's rounded minutes.
        if not stored.get("retries") and out.get("retries") == campaigns.resolve(web.cfg, {})["retries"]:
            del out["retries"]
        settings = {k: v for k, v in stored.items() if k not in FORM_KEYS}
        settings.update(out)
        store.update_campaign(c, cid, name=name, settings=settings)
        web.log.info("dialer: %s saved the settings of campaign %d: %s", web.user(), cid, settings)
        web.redirect_with(f"/dialer/c/{cid}", notice=web.t("camp.saved"))

    @app.post("/dialer/c/<cid:int>/schedule")
    @web.login_required
    def save_windows(cid):
        campaign_or_404(conn(), cid)
        starts, ends, errors, form = {}, {}, {}, {}
        for d in range(7):
            day = web.t(f"day.{d}")
            parsed = {}
            for part in ("start", "end"):
                raw = form[f"{part}{d}"] = req.forms.getunicode(f"{part}{d}") or ""
                try:
                    parsed[part] = migrate.parse_time(raw)
                except ValueError:
                    errors[f"{part}{d}"] = web.t("camp.time.bad", day=day)
            if errors.get(f"start{d}") or errors.get(f"end{d}"):
                continue
            if parsed["end"] and not parsed["start"]:
                errors[f"end{d}"] = web.t("camp.end.alone", day=day)
            elif parsed["end"] and parsed["end"] <= parsed["start"]:
                errors[f"end{d}"] = web.t("camp.end.before", day=day)
            starts[d], ends[d] = parsed["start"], parsed["end"]
        if errors:
            web.redirect_with(f"/dialer/c/{cid}", errors=errors, form=form)
        store.set_schedule(conn(), starts, cid, ends=ends)
        web.log.info("dialer: %s saved the windows of campaign %d: %s", web.user(), cid,
                     {d: (starts[d], ends[d]) for d in starts if starts[d]})
        web.redirect_with(f"/dialer/c/{cid}", notice=web.t("camp.windows.saved"))

    @app.post("/dialer/c/<cid:int>/state")
    @web.login_required
    def set_state(cid):
        campaign_or_404(conn(), cid)
        c = conn()
        action = req.forms.getunicode("action") or ""
        if action not in STATE_ACTIONS:
            raise bottle.HTTPError(400, web.t("error.400"))
        state, notice = STATE_ACTIONS[action]
        active = store.active_run(c, cid)
        if state == "archived" and active is not None:
            web.redirect_with(f"/dialer/c/{cid}", notice=web.t("camp.archive.active", id=active["id"]))
        store.update_campaign(c, cid, state=state)
        web.log.info("dialer: %s set campaign %d %s", web.user(), cid, state)
        if state == "active":
            kick(web.cfg)          # a run held by the pause goes on now, not at the next cron minute
        web.redirect_with(f"/dialer/c/{cid}", notice=web.t(notice))

    @app.post("/dialer/c/<cid:int>/copy")
    @web.login_required
    def copy(cid):
        camp = campaign_or_404(conn(), cid)
        name = web.t("camp.copy.name", name=camp["name"])[:NAME_MAX]
        new = store.copy_campaign(conn(), cid, name)
        web.log.info("dialer: %s copied campaign %d to %d", web.user(), cid, new)
        web.redirect_with(f"/dialer/c/{new}", notice=web.t("camp.copied", name=name))

    @app.post("/dialer/c/<cid:int>/run")
    @web.login_required
    def run_now(cid):
        camp = campaign_or_404(conn(), cid)
        c, back = conn(), f"/dialer/c/{cid}"
        if camp["state"] != "active":
            web.redirect_with(back, notice=web.t(f"camp.run.{camp['state']}"))
        if not store.phone_count(c, cid):
            web.redirect_with(back, notice=web.t("dialer.no_phones"))
        try:
            run_id = store.create_run(c, "manual", schedule.now(web.cfg).date().isoformat(), by_user=web.user() or "",
                                      campaign_id=cid,
                                      settings=campaigns.resolve(web.cfg, json.loads(camp["settings"] or "{}")))
        except store.RunExists:
            active = store.active_run(c, cid)
            web.redirect_with(back, notice=web.t("dialer.busy", id=active["id"] if active else "?"))
        web.log.info("dialer: %s started run %d of campaign %d", web.user(), run_id, cid)
        kick(web.cfg)
        bottle.redirect(f"/dialer/runs/{run_id}", 303)

    @app.post("/dialer/c/<cid:int>/stop")
    @web.login_required
    def stop(cid):
        campaign_or_404(conn(), cid)
        run_id = store.request_stop(conn(), campaign_id=cid)
        if run_id is None:
            web.redirect_with(f"/dialer/c/{cid}", notice=web.t("camp.no_active"))
        web.log.info("dialer: %s stopped run %d of campaign %d", web.user(), run_id, cid)
        kick(web.cfg)
        web.redirect_with(f"/dialer/c/{cid}", notice=web.t("camp.stopped", id=run_id))

    @app.get("/dialer/c/<cid:int>/export/<what:re:todo|schedule>.json")
    @web.login_required
    def export(cid, what):
        campaign_or_404(conn(), cid)
        c = conn()
        body = (migrate.export_todo(store.phones(c, cid)) if what == "todo"
                else migrate.export_schedule(store.schedule(c, cid)))
        bottle.response.content_type = "application/json; charset=utf-8"
        bottle.response.set_header("Content-Disposition", f'attachment; filename="{what}.json"')
        return body

    @app.get("/dialer/export/<what:re:todo|schedule>.json")
    @web.login_required
    def export_campaign_1(what):
        """The links of the single-list page: campaign 1's files."""
        bottle.redirect(f"/dialer/c/1/export/{what}.json", 302)

    # ---- the other dialer pages: one line each ---------------------------------------------------
    from . import web_api, web_numbers, web_runs, web_sounds, web_suppressed
    web_numbers.register(web)     # a campaign's numbers and imports
    web_runs.register(web)        # run pages (live), exports, results
    web_suppressed.register(web)  # the do-not-call list
    web_sounds.register(web)      # the messages
    web_api.register(web)         # the JSON API and its tokens page (/api/dialer/v1, /dialer/tokens)

