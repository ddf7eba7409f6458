"""The autodialer's run pages: a run live (`/dialer/runs/<id>`, its JSON polled by dialer_run.js), its
exports, Stop, "call the unanswered again", and a campaign's results (`/dialer/c/<id>/results`)."""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any, Dict

import bottle

from . import campaigns, export, runview, schedule, store
from .kick import kick
from .web import campaign_or_404

STRINGS = {
    "ru": {
        "runs.run": "Запуск", "runs.campaign": "Кампания", "runs.results": "Результаты",
        "runs.results.title": "Результаты кампании «{name}»", "runs.back": "← к кампании",
        "runs.started": "Начат", "runs.finished": "Закончен", "runs.status": "Состояние",
        "runs.trigger.schedule": "по расписанию", "runs.trigger.manual": "вручную", "runs.trigger.api": "через API",
        "runs.seg.answered": "ответили", "runs.seg.unanswered": "не ответили",
        "runs.seg.calling": "переданы АТС, звоним", "runs.seg.waiting": "ждут звонка",
        "runs.total": "Всего номеров: {n}",
        "runs.optouts": "отказались от звонков: {n}",
        "runs.number": "Номер", "runs.comment": "Комментарий", "runs.outcome": "Итог", "runs.pressed": "Нажата",
        "runs.attempts": "Попыток", "runs.start": "Начало звонка", "runs.end": "Конец", "runs.optout": "Отказ",
        "runs.note": "Примечание", "runs.yes": "да",
        "runs.search": "Поиск по номеру или комментарию", "runs.find": "Найти",
        "runs.page": "Страница {page} из {pages} · номеров: {n}", "runs.prev": "← назад", "runs.next": "дальше →",
        "runs.none": "Нет номеров.",
        "runs.stop": "Остановить", "runs.stop.confirm": "Остановить обзвон? Ещё не отправленные звонки будут отменены.",
        "runs.stopping": "Запуск {id} останавливается.",
        "runs.again": "Позвонить не ответившим ещё раз",
        "runs.again.confirm": "Начать новый запуск только по номерам, которые не ответили ({n})?",
        "runs.again.started": "Запуск {id}: звоним {n} не ответившим номерам запуска {of}.",
        "runs.again.nothing": "Звонить некому: в запуске {id} ответили все (или отказались от звонков).",
        "runs.again.busy": "У кампании уже идёт запуск {id}: дождитесь его окончания или остановите его.",
        "runs.again.active": "Запуск ещё идёт: повторить можно после его окончания.",
        "runs.again.gone": "Кампании этого запуска больше нет или она в архиве.",
        "runs.export": "Скачать", "runs.export.xlsx": "Excel (XLSX)", "runs.export.csv": "CSV",
        "runs.live": "Страница обновляется сама.",
        "runs.history": "Запуски", "runs.per_day": "По дням", "runs.no_runs": "Запусков ещё не было.",
        "runs.day": "День", "runs.runs": "Запусков", "runs.chart": "Итоги", "runs.open": "В работе",
        "runs.status.queued": "в очереди", "runs.status.running": "идёт", "runs.status.stopping": "останавливается",
        "runs.status.done": "завершён", "runs.status.stopped": "остановлен", "runs.status.missed": "пропущен",
        "runs.status.failed": "прерван: ошибка",
        "runs.result.suppressed": "в списке «не звонить»",
        "runs.result.window_closed": "окно закрылось",
        "runs.retry": "ждёт повтора (было: {last})",
    },
    "en": {
        "runs.run": "Run", "runs.campaign": "Campaign", "runs.results": "Results",
        "runs.results.title": "Results of campaign “{name}”", "runs.back": "← back to the campaign",
        "runs.started": "Started", "runs.finished": "Finished", "runs.status": "Status",
        "runs.trigger.schedule": "scheduled", "runs.trigger.manual": "by hand", "runs.trigger.api": "through the API",
        "runs.seg.answered": "answered", "runs.seg.unanswered": "not answered",
        "runs.seg.calling": "handed to the PBX, calling", "runs.seg.waiting": "waiting to be called",
        "runs.total": "Numbers: {n}",
        "runs.optouts": "opted out: {n}",
        "runs.number": "Number", "runs.comment": "Comment", "runs.outcome": "Outcome", "runs.pressed": "Pressed",
        "runs.attempts": "Attempts", "runs.start": "Call start", "runs.end": "End", "runs.optout": "Opted out",
        "runs.note": "Note", "runs.yes": "yes",
        "runs.search": "Search by number or comment", "runs.find": "Find",
        "runs.page": "Page {page} of {pages} · numbers: {n}", "runs.prev": "← previous", "runs.next": "next →",
        "runs.none": "No numbers.",
        "runs.stop": "Stop", "runs.stop.confirm": "Stop the run? Calls not yet handed to the PBX are cancelled.",
        "runs.stopping": "Run {id} is stopping.",
        "runs.again": "Call the unanswered again",
        "runs.again.confirm": "Start a new run of only the numbers that did not answer ({n})?",
        "runs.again.started": "Run {id}: calling the {n} numbers of run {of} that did not answer.",
        "runs.again.nothing": "Nobody to call: every number of run {id} answered (or opted out).",
        "runs.again.busy": "Run {id} of this campaign is still active: wait for it to end or stop it.",
        "runs.again.active": "The run is still going: it can be repeated once it has ended.",
        "runs.again.gone": "This run's campaign no longer exists or is archived.",
        "runs.export": "Download", "runs.export.xlsx": "Excel (XLSX)", "runs.export.csv": "CSV",
        "runs.live": "The page updates itself.",
        "runs.history": "Runs", "runs.per_day": "Per day", "runs.no_runs": "No runs yet.",
        "runs.day": "Day", "runs.runs": "Runs", "runs.chart": "Outcomes", "runs.open": "Open",
        "runs.status.queued": "queued", "runs.status.running": "running", "runs.status.stopping": "stopping",
        "runs.status.done": "done", "runs.status.stopped": "stopped", "runs.status.missed": "missed",
        "runs.status.failed": "failed",
        "runs.result.suppressed": "on the do-not-call list",
        "runs.result.window_closed": "window closed",
        "runs.retry": "waiting for a retry (was: {last})",
    },
}


def register(web) -> None:
    app, req = web.app, bottle.request
    web.strings(STRINGS)
    runview.prepare(web.db())

    def tz():
        return schedule.tz(web.cfg)

    def the_run(run_id: int):
        r = store.run(web.db(), run_id)
        if r is None:
            raise bottle.HTTPError(404)
        return r

    def label(key: str) -> str:
        """An outcome in the words of the exports (the same on the page and in the file)."""
        own = web.t("runs.result." + key)
        return export.OUTCOMES[web.lang()].get(key) or (key if own == "runs.result." + key else own)

    def row_view(r: Dict[str, Any], day: str) -> Dict[str, Any]:
        key = runview.outcome(r["state"], r["result"])
        text = label(key)
        if key == "pending" and r["result"]:
            text = web.t("runs.retry", last=label(r["result"]))
        ended = r["finished"] if r["state"] in ("done", "withdrawn") else None
        return {"number": r["number"], "comment": r["comment"], "outcome": key, "outcome_text": text,
                "pressed": r["pressed"] or "", "attempts": r["attempts"],
                "start": runview.clock(r["spooled"], tz(), day), "end": runview.clock(ended, tz(), day),
                "optout": web.t("runs.yes") if r["optout"] else "", "note": r["note"] or ""}

    def state(run_id: int) -> Dict[str, Any]:
        """Everything the page shows, for the template and the JSON alike: one page of rows only."""
        c = web.db()
        r = the_run(run_id)
        search = (req.query.getunicode("q") or "").strip()[:100]
        try:
            wanted = max(1, int(req.query.get("p") or 1))
        except ValueError:
            wanted = 1
        n = runview.count(c, r, search)
        pages = max(1, math.ceil(n / runview.PAGE_SIZE))
        p = min(wanted, pages)
        counts = runview.counts(c, run_id)
        left = counts["again"]
        camp = store.campaign(c, r["campaign_id"])
        return {
            "run": {"id": r["id"], "campaign_id": r["campaign_id"], "campaign": camp["name"] if camp else "",
                    "status": r["status"], "status_text": web.t("runs.status." + r["status"]),
                    "active": r["status"] in store.ACTIVE, "trigger": r["trigger"], "day": r["day"],
                    "by_user": r["by_user"], "note": r["note"] or "",
                    "started": runview.clock(r["started"], tz()), "finished": runview.clock(r["finished"], tz())},
            "counts": counts, "bar": runview.bar(counts), "again": left,
            "again_confirm": web.t("runs.again.confirm", n=left),
            "optout_text": web.t("runs.optouts", n=counts["optout"]),
            "rows": [row_view(x, r["day"]) for x in runview.page(c, r, search, (p - 1) * runview.PAGE_SIZE)],
            "q": search, "page": p, "pages": pages, "matched": n,
            "page_text": web.t("runs.page", page=p, pages=pages, n=n),
        }

    @app.get("/dialer/runs/<run_id:int>")
    @web.login_required
    def run_page(run_id):
        f = web.flashed()
        return web.render("dialer_run.html", s=state(run_id), segments=runview.SEGMENTS, notice=f["notice"],
                          errors=f["errors"], form=f["form"])

    @app.get("/dialer/runs/<run_id:int>.json")
    @web.login_required
    def run_json(run_id):
        return web.json(state(run_id))

    @app.post("/dialer/runs/<run_id:int>/stop")
    @web.login_required
    def stop(run_id):
        the_run(run_id)
        stopped = store.request_stop(web.db(), run_id=run_id)
        if stopped is not None:
            web.log.info("dialer: %s stopped run %d", web.user(), run_id)
            kick(web.cfg)
        web.redirect_with(f"/dialer/runs/{run_id}", notice=web.t("runs.stopping", id=run_id) if stopped else "")

    @app.post("/dialer/runs/<run_id:int>/again")
    @web.login_required
    def again(run_id):
        c = web.db()
        r = the_run(run_id)
        back = f"/dialer/runs/{run_id}"
        if r["status"] in store.ACTIVE:
            web.redirect_with(back, notice=web.t("runs.again.active"))
        camp = store.campaign(c, r["campaign_id"])
        if camp is None or camp["state"] == "archived":
            web.redirect_with(back, notice=web.t("runs.again.gone"))
        if not runview.counts(c, run_id)["again"]:
            web.redirect_with(back, notice=web.t("runs.again.nothing", id=run_id))
        try:
            new = store.create_run(c, "manual", schedule.now(web.cfg).date().isoformat(), by_user=web.user() or "",
                                   campaign_id=r["campaign_id"], only_unanswered_of=run_id,
                                   settings=campaigns.resolve(web.cfg, json.loads(camp["settings"])))
        except store.RunExists:
            active = store.active_run(c, r["campaign_id"])
            web.redirect_with(back, notice=web.t("runs.again.busy", id=active["id"] if active else "?"))
        web.log.info("dialer: %s started run %d: the unanswered of run %d", web.user(), new, run_id)
        kick(web.cfg)
        n = c.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ?", (new,)).fetchone()[0]
        web.redirect_with(f"/dialer/runs/{new}", notice=web.t("runs.again.started", id=new, n=n, of=run_id))

    @app.get("/dialer/runs/<run_id:int>/export.<fmt:re:xlsx|csv>")
    @web.login_required
    def download(run_id, fmt):
        c, r, lang = web.db(), the_run(run_id), web.lang()
        name = f"run-{run_id}-{r['day']}.{fmt}"
        bottle.response.set_header("Content-Disposition", f'attachment; filename="{name}"')
        rows = ({**x, "outcome": label(x["outcome"])} if x["outcome"] not in export.OUTCOMES[lang] else x
                for x in runview.export_rows(c, r))
        if fmt == "csv":
            bottle.response.content_type = "text/csv; charset=utf-8"
            return export.csv_chunks(rows, lang=lang, tz=tz())
        # openpyxl's write-only mode spools rows to disk; the finished file is sent in chunks.
        out = tempfile.TemporaryFile()
        export.write_xlsx(rows, out, lang=lang, tz=tz(),
                          title=f"{web.t('runs.run')} {run_id}")
        out.seek(0)
        bottle.response.content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        bottle.response.set_header("Content-Length", str(os.fstat(out.fileno()).st_size))
        return _chunks(out)

    @app.get("/dialer/c/<campaign_id:int>/results")
    @web.login_required
    def results(campaign_id):
        c = web.db()
        camp = campaign_or_404(c, campaign_id)
        runs = runview.per_run(c, campaign_id)
        for r in runs:
            r["bar"] = runview.bar(r)
            r["started_text"] = runview.clock(r["started"] or r["created"], tz())
        days = runview.per_day(runs)
        for d in days:
            d["bar"] = runview.bar(d)
        return web.render("dialer_results.html", camp=camp, runs=runs, days=days, segments=runview.SEGMENTS)


def _chunks(f, size: int = 65536):
    try:
        while True:
            b = f.read(size)
            if not b:
                return
            yield b
    finally:
        f.close()

