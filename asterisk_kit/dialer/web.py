"""The autodialer's page `/dialer`: phones, schedule, runs (behind the login)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import bottle

from .. import storage
from . import campaigns, migrate, schedule, store
from .importing import ImportProblem, read_list
from .numbers import BadNumber, Entry, NumberRules, comment, digit

STRINGS = {
    "ru": {
        "nav.dialer": "Автообзвон",
        "dialer.title": "Автообзвон",
        "dialer.phones": "Номера",
        "dialer.number": "Номер",
        "dialer.digit": "Цифра IVR",
        "dialer.digit.hint": "пусто — простой звонок с сообщением",
        "dialer.comment": "Комментарий",
        "dialer.add": "Добавить",
        "dialer.edit": "Изменить",
        "dialer.save": "Сохранить",
        "dialer.cancel": "Отмена",
        "dialer.delete": "Удалить",
        "dialer.count": "Всего номеров: {n}",
        "dialer.empty": "Список пуст.",
        "dialer.bulk": "Загрузить список",
        "dialer.bulk.hint": "Один номер в строке или CSV: номер;цифра;комментарий. Повторы объединяются.",
        "dialer.bulk.submit": "Загрузить",
        "dialer.bulk.result": "Добавлено: {added}, обновлено: {updated}, отклонено: {rejected}.",
        "dialer.bulk.line": "Строка {no} «{line}»: {reason}",
        "dialer.saved": "Сохранено.",
        "dialer.deleted": "Номер {number} удалён.",
        "dialer.schedule": "Расписание",
        "dialer.schedule.hint": "Время начала ЧЧ:ММ или пусто — выходной. Часовой пояс АТС: {tz}.",
        "dialer.schedule.save": "Сохранить расписание",
        "dialer.schedule.saved": "Расписание сохранено.",
        "dialer.off": "выкл.",
        "dialer.runs": "Запуски",
        "dialer.run_now": "Запустить сейчас",
        "dialer.run_now.confirm": "Начать обзвон всех номеров списка сейчас?",
        "dialer.stop": "Остановить",
        "dialer.stop.confirm": "Остановить обзвон? Ещё не отправленные звонки будут отменены.",
        "dialer.started": "Запуск {id} начат.",
        "dialer.stopping": "Запуск {id} останавливается.",
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
        "dialer.details": "подробно",
        "dialer.no_runs": "Запусков ещё не было.",
        "dialer.result": "Результат",
        "dialer.pressed": "Нажата",
        "dialer.batch": "Пачка",
        "dialer.back": "← к автообзвону",
        "dialer.export": "Скачать список (todo.json)",
        "dialer.export.schedule": "Скачать расписание (schedule.json)",
        "day.0": "Пн", "day.1": "Вт", "day.2": "Ср", "day.3": "Чт", "day.4": "Пт", "day.5": "Сб", "day.6": "Вс",
        "status.queued": "в очереди", "status.running": "идёт", "status.stopping": "останавливается",
        "status.done": "завершён", "status.stopped": "остановлен", "status.missed": "пропущен",
        "status.failed": "прерван: ошибка",
        "result.answered": "ответил", "result.busy": "занято", "result.no_answer": "нет ответа",
        "result.failed": "ошибка", "result.withdrawn": "отменён", "result.pending": "ожидает",
        "result.spooled": "звоним",
        "number.empty": "пустой номер",
        "number.chars": "только цифры (и +7 в начале)",
        "number.pattern": "номер не в формате 8XXXXXXXXXX",
        "digit.bad": "цифра IVR — одна цифра 0–9 или пусто",
        "comment.long": "комментарий длиннее 200 символов",
        "schedule.bad": "время в формате ЧЧ:ММ или пусто",
        "dialer.bulk.read": "Прочитано строк: {read} (кодировка {encoding}), повторов объединено: {duplicates}.",
        "dialer.bulk.header": "Первая строка — заголовок, пропущена.",
        "import.too_big": "Список больше {mb} МБ — разделите его на части.",
        "import.form": "Форма пришла повреждённой — отправьте список ещё раз.",
        "import.json": "Файл не читается как JSON: ошибка в строке {line}, позиция {col}.",
        "import.nested": "Файл JSON слишком глубоко вложен — это не список номеров.",
        "import.notlist": "В todo.json ожидается список номеров или объектов {number, dtmf, comment}.",
        "line.long": "строка длиннее 1000 символов",
        "line.csv": "строка не читается как CSV",
    },
    "en": {
        "nav.dialer": "Autodialer",
        "dialer.title": "Autodialer",
        "dialer.phones": "Numbers",
        "dialer.number": "Number",
        "dialer.digit": "IVR digit",
        "dialer.digit.hint": "empty: a plain call with the message",
        "dialer.comment": "Comment",
        "dialer.add": "Add",
        "dialer.edit": "Edit",
        "dialer.save": "Save",
        "dialer.cancel": "Cancel",
        "dialer.delete": "Delete",
        "dialer.count": "Numbers: {n}",
        "dialer.empty": "The list is empty.",
        "dialer.bulk": "Import a list",
        "dialer.bulk.hint": "One number per line, or CSV: number;digit;comment. Duplicates are merged.",
        "dialer.bulk.submit": "Import",
        "dialer.bulk.result": "Added: {added}, updated: {updated}, rejected: {rejected}.",
        "dialer.bulk.line": "Line {no} “{line}”: {reason}",
        "dialer.saved": "Saved.",
        "dialer.deleted": "Number {number} deleted.",
        "dialer.schedule": "Schedule",
        "dialer.schedule.hint": "Start time HH:MM, or empty for a day off. PBX time zone: {tz}.",
        "dialer.schedule.save": "Save schedule",
        "dialer.schedule.saved": "Schedule saved.",
        "dialer.off": "off",
        "dialer.runs": "Runs",
        "dialer.run_now": "Run now",
        "dialer.run_now.confirm": "Call every number of the list now?",
        "dialer.stop": "Stop",
        "dialer.stop.confirm": "Stop the run? Calls not yet handed to the PBX are cancelled.",
        "dialer.started": "Run {id} started.",
        "dialer.stopping": "Run {id} is stopping.",
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
        "dialer.details": "details",
        "dialer.no_runs": "No runs yet.",
        "dialer.result": "Result",
        "dialer.pressed": "Pressed",
        "dialer.batch": "Batch",
        "dialer.back": "← back to the autodialer",
        "dialer.export": "Download the list (todo.json)",
        "dialer.export.schedule": "Download the schedule (schedule.json)",
        "day.0": "Mon", "day.1": "Tue", "day.2": "Wed", "day.3": "Thu", "day.4": "Fri", "day.5": "Sat", "day.6": "Sun",
        "status.queued": "queued", "status.running": "running", "status.stopping": "stopping",
        "status.done": "done", "status.stopped": "stopped", "status.missed": "missed",
        "status.failed": "failed",
        "result.answered": "answered", "result.busy": "busy", "result.no_answer": "no answer",
        "result.failed": "failed", "result.withdrawn": "withdrawn", "result.pending": "waiting",
        "result.spooled": "calling",
        "number.empty": "empty number",
        "number.chars": "digits only (and +7 at the start)",
        "number.pattern": "not a number of the form 8XXXXXXXXXX",
        "digit.bad": "the IVR digit is one digit 0-9 or empty",
        "comment.long": "comment longer than 200 characters",
        "schedule.bad": "a time HH:MM, or empty",
        "dialer.bulk.read": "Lines read: {read} (encoding {encoding}), duplicates merged: {duplicates}.",
        "dialer.bulk.header": "The first line is a header and was skipped.",
        "import.too_big": "The list is larger than {mb} MB: split it into parts.",
        "import.form": "The form arrived damaged: send the list again.",
        "import.json": "The file is not valid JSON: error at line {line}, column {col}.",
        "import.nested": "The JSON file is nested too deeply to be a list of numbers.",
        "import.notlist": "todo.json must be a list of numbers or {number, dtmf, comment} objects.",
        "line.long": "line longer than 1000 characters",
        "line.csv": "not a CSV line",
    },
}


def register(web) -> None:
    app, req = web.app, bottle.request
    web.strings(STRINGS)
    web.nav("/dialer", "nav.dialer")
    rules = NumberRules.from_config(web.cfg)

    conn = web.db
    # Imports of 200 000 numbers (several MB) are one form field or file: bottle must keep such a part
    # whole in memory (a part above MEMFILE_MAX is spooled and dropped from forms, and parts summing
    # above it fail with "Memory limit reached"). The size is checked first, see bulk_import.
    bottle.BaseRequest.MEMFILE_MAX = max(bottle.BaseRequest.MEMFILE_MAX, web.cfg["dialer"]["import_max_bytes"] + 65536)
    storage.migrate(conn(), "dialer", store.MIGRATIONS)

    def page(**extra):
        c = conn()
        values = {
            "phones": store.phones(c), "sched": store.schedule(c), "runs": store.runs(c, 30),
            "active": store.active_run(c), "tz": schedule.tz_name(web.cfg), "edit": req.query.getunicode("edit"),
            "form": {}, "errors": {}, "notice": "", "bulk_report": None, "bulk_text": "",
            "sched_errors": {}, "sched_form": None,
        }
        msg = req.query.getunicode("m") or ""
        if msg in ("dialer.saved", "dialer.schedule.saved"):
            values["notice"] = web.t(msg)
        values.update(extra)
        return web.render("dialer.html", **values)

    def back(msg: str = ""):
        bottle.redirect("/dialer" + (f"?m={msg}" if msg else ""), 303)

    def entry_from_form(f):
        errors = {}
        values = {}
        for field, check in (("number", rules.number), ("digit", digit), ("comment", comment)):
            try:
                values[field] = check(f.getunicode(field) or "")
            except BadNumber as e:
                errors[field] = web.t(e.key)
        return (Entry(**values) if not errors else None), errors

    @app.get("/dialer")
    @web.login_required
    def dialer_page():
        return page()

    @app.post("/dialer/phones")
    @web.login_required
    def add_phone():
        e, errors = entry_from_form(req.forms)
        if errors:
            bottle.response.status = 400
            return page(form=_form(req.forms), errors=errors)
        store.upsert_phones(conn(), [e])
        web.log.info("dialer: %s added/updated %s", web.user(), e.number)
        back("dialer.saved")

    @app.post("/dialer/phones/<number:re:[0-9]{1,20}>")
    @web.login_required
    def edit_phone(number):
        e, errors = entry_from_form(req.forms)
        if errors:
            bottle.response.status = 400
            return page(edit=number, form=_form(req.forms), errors=errors)
        try:
            store.replace_phone(conn(), number, e)
        except KeyError:
            raise bottle.HTTPError(404) from None
        web.log.info("dialer: %s changed %s -> %s", web.user(), number, e.number)
        back("dialer.saved")

    @app.post("/dialer/phones/<number:re:[0-9]{1,20}>/delete")
    @web.login_required
    def delete_phone(number):
        store.delete_phone(conn(), number)
        web.log.info("dialer: %s deleted %s", web.user(), number)
        return page(notice=web.t("dialer.deleted", number=number))

    @app.post("/dialer/import")
    @web.login_required
    def bulk_import() -> str:
        limit = web.cfg["dialer"]["import_max_bytes"]
        if (req.content_length or 0) > limit + 65536:
            bottle.response.status = 413
            return page(bulk_report={"error": web.t("import.too_big", mb=f"{limit / 1e6:g}")})
        try:
            pasted, upload = req.POST.get("text"), req.POST.get("file")
        except bottle.MultipartError:
            bottle.response.status = 400
            return page(bulk_report={"error": web.t("import.form")})
        # A big pasted list may arrive as a spooled part (a FileUpload without a name): read it too.
        text = (pasted.file.read().decode("utf-8", errors="replace") if isinstance(pasted, bottle.FileUpload)
                else pasted if isinstance(pasted, str) else "")
        data: "str | bytes" = text
        if isinstance(upload, bottle.FileUpload) and upload.filename:
            data = upload.file.read(limit + 1)
            if len(data) > limit:
                bottle.response.status = 413
                return page(bulk_report={"error": web.t("import.too_big", mb=f"{limit / 1e6:g}")})
        try:
            parsed = read_list(data, rules)
        except ImportProblem as e:
            bottle.response.status = 400
            return page(bulk_text=text, bulk_report={"error": web.t(e.key, **e.params)})
        res = store.upsert_phones(conn(), parsed.entries)
        web.log.info("dialer: %s imported: %s", web.user(), parsed.summary(res["added"], res["updated"]))
        report = {"summary": web.t("dialer.bulk.result", added=res["added"], updated=res["updated"],
                                   rejected=len(parsed.rejected)),
                  "read": web.t("dialer.bulk.read", read=parsed.read, encoding=parsed.encoding,
                                duplicates=parsed.duplicates)
                  + (" " + web.t("dialer.bulk.header") if parsed.header else ""),
                  "lines": [web.t("dialer.bulk.line", no=no, line=line.strip()[:80], reason=web.t(err.key))
                            for no, line, err in parsed.rejected]}
        # Rejected lines stay in the box so they can be corrected and sent again.
        return page(bulk_report=report, bulk_text="\n".join(line for _, line, _ in parsed.rejected))

    @app.post("/dialer/schedule")
    @web.login_required
    def save_schedule():
        days, errors, form = {}, {}, {}
        for d in range(7):
            raw = req.forms.getunicode(f"day{d}") or ""
            form[d] = raw
            try:
                days[d] = migrate.parse_time(raw)
            except ValueError:
                errors[d] = web.t("schedule.bad")
        if errors:
            bottle.response.status = 400
            return page(sched_errors=errors, sched_form=form)
        store.set_schedule(conn(), days)
        web.log.info("dialer: %s saved the schedule %s", web.user(), days)
        back("dialer.schedule.saved")

    @app.post("/dialer/run")
    @web.login_required
    def run_now():
        c = conn()
        if not store.phones(c):
            return page(notice=web.t("dialer.no_phones"))
        try:
            camp = store.campaign(c, 1)
            run_id = store.create_run(c, "manual", schedule.now(web.cfg).date().isoformat(), by_user=web.user(),
                                      settings=campaigns.resolve(web.cfg, json.loads(camp["settings"])))
        except store.RunExists:
            return page(notice=web.t("dialer.busy", id=store.active_run(c)["id"]))
        web.log.info("dialer: %s started run %d", web.user(), run_id)
        _kick(web.cfg)
        bottle.redirect(f"/dialer/runs/{run_id}", 303)

    @app.post("/dialer/stop")
    @web.login_required
    def stop():
        run_id = store.request_stop(conn())
        if run_id is not None:
            web.log.info("dialer: %s stopped run %d", web.user(), run_id)
            _kick(web.cfg)
        bottle.redirect(f"/dialer/runs/{run_id}" if run_id else "/dialer", 303)

    @app.get("/dialer/export/<what:re:todo|schedule>.json")
    @web.login_required
    def export(what):
        c = conn()
        body = migrate.export_todo(store.phones(c)) if what == "todo" else migrate.export_schedule(store.schedule(c))
        bottle.response.content_type = "application/json; charset=utf-8"
        bottle.response.set_header("Content-Disposition", f'attachment; filename="{what}.json"')
        return body

    @app.get("/dialer/runs/<run_id:int>")
    @web.login_required
    def run_page(run_id):
        c = conn()
        r = store.run(c, run_id)
        if r is None:
            raise bottle.HTTPError(404)
        return web.render("dialer_run.html", run=r, calls=store.calls(c, run_id),
                          active=r["status"] in store.ACTIVE)

    from . import web_numbers
    web_numbers.register(web)


def _form(f):
    return {k: f.getunicode(k) or "" for k in ("number", "digit", "comment")}


def _kick(cfg) -> None:
    """Let a `dialer tick` process work on the run now instead of at the next cron minute."""
    cmd = [sys.executable, "-m", "asterisk_kit"]
    if cfg.path:
        cmd += ["--config", str(cfg.path)]
    subprocess.Popen(cmd + ["dialer", "tick"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, env=dict(os.environ))
