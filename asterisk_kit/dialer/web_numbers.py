"""A campaign's numbers page `/dialer/c/<id>/numbers`: table with search and pages, add, edit, delete,
clear, import (paste, CSV, XLSX, todo.json) and replace, each import with its per-line report.

Every POST answers with a redirect (web.redirect_with): errors at the top with a link to the field and
the typed input kept; an import's report is stored (listimport) and shown at `?report=<id>`.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Optional
from urllib.parse import urlencode

import bottle

from . import listimport, schedule, store
from .importing import ImportProblem
from .media_strings import STRINGS as MEDIA_STRINGS
from .media_strings import MediaError
from .numbers import BadNumber, Entry, NumberRules, comment, digit
from .web import campaign_or_404

PER_PAGE = 100
REPORT_FIRST = 20          # lines of each kind shown with the summary; the rest paged or downloaded
KEEP_TEXT = 1_000_000      # a pasted list longer than this is not carried back into the box after an error

STRINGS = {
    "ru": {
        "num.title": "Номера: {name}",
        "num.back": "← к кампании",
        "num.number": "Номер", "num.digit": "Цифра IVR", "num.comment": "Комментарий",
        "num.created": "Добавлен", "num.updated": "Изменён",
        "num.digit.hint": "пусто — простой звонок с сообщением",
        "num.add": "Добавить", "num.edit": "Изменить", "num.save": "Сохранить", "num.cancel": "Отмена",
        "num.delete": "Удалить", "num.delete.confirm": "Удалить номер {number} из списка?",
        "num.search": "Поиск (номер или комментарий)", "num.search.go": "Найти", "num.search.reset": "Сбросить",
        "num.count": "Всего номеров: {n}", "num.found": "Найдено: {n} из {total}",
        "num.empty": "Список пуст.", "num.nothing": "Ничего не найдено.",
        "num.page": "Страница {page} из {pages}", "num.prev": "← назад", "num.next": "вперёд →",
        "num.pages": "Страницы",
        "num.added": "Номер {number} добавлен.", "num.saved": "Номер {number} сохранён.",
        "num.exists": "Номер {number} уже был в списке — обновлён.",
        "num.deleted": "Номер {number} удалён.", "num.gone": "Номера {number} уже нет в списке.",
        "num.clear": "Очистить список", "num.clear.confirm": "Удалить все номера кампании ({n})? Отменить нельзя.",
        "num.cleared": "Список очищен: удалено номеров: {n}.",
        "num.import": "Загрузить список",
        "num.import.hint": "Вставьте номера (по одному в строке или CSV: номер;цифра;комментарий) или выберите "
                           "файл: CSV (UTF-8 или Windows-1251, разделитель , ; или табуляция), Excel .xlsx "
                           "(столбцы номер и комментарий) или todo.json. 10-значные номера получают префикс "
                           "«{prefix}». Повторы объединяются.",
        "num.import.text": "Список", "num.import.file": "Файл",
        "num.import.add": "Добавить к списку", "num.import.replace": "Заменить список",
        "num.import.replace.confirm": "Заменить весь список кампании загружаемым? Номера, которых нет в новом "
                                      "списке, будут удалены.",
        "num.import.none": "Вставьте список или выберите файл.",
        "rep.title": "Отчёт о загрузке",
        "rep.summary": "Добавлено: {added}, обновлено: {updated} (изменено: {changed}), отклонено: {rejected}.",
        "rep.removed": "Заменён весь список: удалено номеров, которых нет в новом: {removed}.",
        "rep.read": "Прочитано строк: {read} (кодировка {encoding}), повторов объединено: {duplicates}.",
        "rep.header": "Первая строка — заголовок, пропущена.",
        "rep.kind.added": "Добавлены", "rep.kind.updated": "Обновлены", "rep.kind.merged": "Повторы",
        "rep.kind.rejected": "Отклонены",
        "rep.line": "Строка {no}",
        "rep.all": "все {n} →", "rep.csv": "Скачать полный отчёт (CSV)", "rep.close": "Скрыть отчёт",
        "rep.nochange": "без изменений", "rep.merged": "тот же номер, что в строке {line}: действует она",
        "rep.gone": "Отчёт не найден (хранятся последние {keep}).",
        "ch.digit": "цифра", "ch.comment": "комментарий",
        "number.empty": "пустой номер", "number.chars": "только цифры (и +7 в начале)",
        "number.pattern": "номер не в формате 8XXXXXXXXXX",
        "digit.bad": "цифра IVR — одна цифра 0–9 или пусто",
        "comment.long": "комментарий длиннее 200 символов",
        "line.long": "строка длиннее 1000 символов", "line.csv": "строка не читается как CSV",
        "import.too_big": "Список больше {mb} МБ — разделите его на части.",
        "import.form": "Форма пришла повреждённой — отправьте список ещё раз.",
        "import.json": "Файл не читается как JSON: ошибка в строке {line}, позиция {col}.",
        "import.nested": "Файл JSON слишком глубоко вложен — это не список номеров.",
        "import.notlist": "В todo.json ожидается список номеров или объектов {number, dtmf, comment}.",
    },
    "en": {
        "num.title": "Numbers: {name}",
        "num.back": "← back to the campaign",
        "num.number": "Number", "num.digit": "IVR digit", "num.comment": "Comment",
        "num.created": "Added", "num.updated": "Changed",
        "num.digit.hint": "empty: a plain call with the message",
        "num.add": "Add", "num.edit": "Edit", "num.save": "Save", "num.cancel": "Cancel",
        "num.delete": "Delete", "num.delete.confirm": "Delete the number {number} from the list?",
        "num.search": "Search (number or comment)", "num.search.go": "Search", "num.search.reset": "Reset",
        "num.count": "Numbers: {n}", "num.found": "Found: {n} of {total}",
        "num.empty": "The list is empty.", "num.nothing": "Nothing found.",
        "num.page": "Page {page} of {pages}", "num.prev": "← previous", "num.next": "next →",
        "num.pages": "Pages",
        "num.added": "Number {number} added.", "num.saved": "Number {number} saved.",
        "num.exists": "Number {number} was already listed: updated.",
        "num.deleted": "Number {number} deleted.", "num.gone": "Number {number} is no longer listed.",
        "num.clear": "Clear the list", "num.clear.confirm": "Delete all numbers of the campaign ({n})? "
                                                            "This cannot be undone.",
        "num.cleared": "List cleared: {n} numbers deleted.",
        "num.import": "Import a list",
        "num.import.hint": "Paste numbers (one per line, or CSV: number;digit;comment) or choose a file: CSV "
                           "(UTF-8 or Windows-1251, separated by , ; or tab), Excel .xlsx (columns number and "
                           "comment) or todo.json. 10-digit numbers get the prefix “{prefix}”. Duplicates "
                           "are merged.",
        "num.import.text": "List", "num.import.file": "File",
        "num.import.add": "Add to the list", "num.import.replace": "Replace the list",
        "num.import.replace.confirm": "Replace the campaign's whole list with this one? Numbers not in the new "
                                      "list are deleted.",
        "num.import.none": "Paste a list or choose a file.",
        "rep.title": "Import report",
        "rep.summary": "Added: {added}, updated: {updated} (changed: {changed}), rejected: {rejected}.",
        "rep.removed": "The whole list was replaced: {removed} numbers not in the new list deleted.",
        "rep.read": "Lines read: {read} (encoding {encoding}), duplicates merged: {duplicates}.",
        "rep.header": "The first line is a header and was skipped.",
        "rep.kind.added": "Added", "rep.kind.updated": "Updated", "rep.kind.merged": "Duplicates",
        "rep.kind.rejected": "Rejected",
        "rep.line": "Line {no}",
        "rep.all": "all {n} →", "rep.csv": "Download the full report (CSV)", "rep.close": "Hide the report",
        "rep.nochange": "no change", "rep.merged": "same number as line {line}, which wins",
        "rep.gone": "No such report (the last {keep} are kept).",
        "ch.digit": "digit", "ch.comment": "comment",
        "number.empty": "empty number", "number.chars": "digits only (and +7 at the start)",
        "number.pattern": "not a number of the form 8XXXXXXXXXX",
        "digit.bad": "the IVR digit is one digit 0-9 or empty",
        "comment.long": "comment longer than 200 characters",
        "line.long": "line longer than 1000 characters", "line.csv": "not a CSV line",
        "import.too_big": "The list is larger than {mb} MB: split it into parts.",
        "import.form": "The form arrived damaged: send the list again.",
        "import.json": "The file is not valid JSON: error at line {line}, column {col}.",
        "import.nested": "The JSON file is nested too deeply to be a list of numbers.",
        "import.notlist": "todo.json must be a list of numbers or {number, dtmf, comment} objects.",
    },
}


def register(web) -> None:
    app, req = web.app, bottle.request
    web.strings(STRINGS)
    web.strings(MEDIA_STRINGS)
    rules = NumberRules.from_config(web.cfg)
    limit = web.cfg["dialer"]["import_max_bytes"]
    tz = schedule.tz(web.cfg)
    conn = web.db
    # bottle's MEMFILE_MAX (an import is one form part kept whole in memory) is raised by web.register.
    listimport.migrate(conn())
    db = conn

    def base(cid: int) -> str:
        return f"/dialer/c/{cid}/numbers"

    def view_url(cid: int, q: str = "", page: int = 1, **extra) -> str:
        args: Dict[str, Any] = {k: v for k, v in (("q", q.strip()), ("page", page if page > 1 else "")) if v}
        args.update({k: v for k, v in extra.items() if v not in (None, "")})
        return base(cid) + ("?" + urlencode(args) if args else "")

    def back_url(cid: int) -> str:
        """The view the form was sent from (search and page kept), rebuilt from plain values."""
        return view_url(cid, req.forms.getunicode("q") or "", _int(req.forms.getunicode("page"), 1))

    def when(t: Optional[float]) -> str:
        return dt.datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M") if t else ""

    def entry(prefix: str):
        values, errors, typed = {}, {}, {}
        for f, check in (("number", rules.number), ("digit", digit), ("comment", comment)):
            raw = req.forms.getunicode(f) or ""
            typed[f"{prefix}-{f}"] = raw
            try:
                values[f] = check(raw)
            except BadNumber as e:
                errors[f"{prefix}-{f}"] = web.t(e.key)
        return (Entry(**values) if not errors else None), errors, typed

    @app.get("/dialer/c/<cid:int>/numbers")
    @web.login_required
    def numbers_page(cid):
        camp = campaign_or_404(db(), cid)
        c = db()
        f = web.flashed()
        q = (req.query.getunicode("q") or "").strip()[:100]
        total = store.phone_count(c, cid)
        found = store.phone_count(c, cid, q) if q else total
        pages = max(1, -(-found // PER_PAGE))
        page = min(max(1, _int(req.query.getunicode("page"), 1)), pages)
        rows = store.phones_page(c, cid, q, (page - 1) * PER_PAGE, PER_PAGE)
        rep = None
        rid = _int(req.query.getunicode("report"), 0)
        kind = req.query.getunicode("kind") or ""
        rpage = max(1, _int(req.query.getunicode("rpage"), 1))
        if rid:
            rep = listimport.report(c, rid)
            if rep is None or rep["campaign_id"] != cid:
                rep = {"missing": True}
            else:
                shown = [kind] if kind in listimport.KINDS else list(listimport.KINDS)
                n = PER_PAGE if kind in listimport.KINDS else REPORT_FIRST
                off = (rpage - 1) * PER_PAGE if kind in listimport.KINDS else 0
                rep["sections"] = [(k, rep[k], [_line_text(web, k, d) for d in listimport.lines(c, rid, k, off, n)])
                                   for k in shown if rep.get(k)]
                rep["kind"] = kind if kind in listimport.KINDS else ""
                rep["rpage"], rep["rpages"] = rpage, max(1, -(-rep.get(kind, 0) // PER_PAGE)) if rep["kind"] else 1
        return web.render("dialer_numbers.html", camp=camp, rows=rows, total=total, found=found, q=q, page=page,
                          pages=pages, page_links=_page_links(page, pages), url=lambda **kw: view_url(cid, **kw),
                          edit=req.query.getunicode("edit") or "", when=when, rep=rep, rid=rid,
                          prefix=rules.trunk_prefix, keep=listimport.KEEP, errors=f["errors"], form=f["form"],
                          notice=f["notice"], dnav="campaigns")

    @app.post("/dialer/c/<cid:int>/numbers/add")
    @web.login_required
    def add_number(cid):
        campaign_or_404(db(), cid)
        e, errors, typed = entry("add")
        if e is None:
            return web.redirect_with(back_url(cid), errors=errors, form=typed, anchor="add-form")
        res = store.upsert_phones(db(), [e], cid)
        web.log.info("dialer: %s added %s to campaign %d", web.user(), e.number, cid)
        msg = "num.added" if res["added"] else "num.exists"
        return web.redirect_with(view_url(cid, e.number), notice=web.t(msg, number=e.number))

    @app.post("/dialer/c/<cid:int>/numbers/<number:re:[0-9]{1,20}>/edit")
    @web.login_required
    def edit_number(cid, number):
        campaign_or_404(db(), cid)
        e, errors, typed = entry("edit")
        if e is None:
            url = back_url(cid)
            url += ("&" if "?" in url else "?") + urlencode({"edit": number})
            return web.redirect_with(url, errors=errors, form=typed, anchor="edit-form")
        try:
            store.replace_phone(db(), number, e, cid)
        except KeyError:
            return web.redirect_with(back_url(cid), notice=web.t("num.gone", number=number))
        web.log.info("dialer: %s changed %s -> %s in campaign %d", web.user(), number, e.number, cid)
        return web.redirect_with(back_url(cid), notice=web.t("num.saved", number=e.number))

    @app.post("/dialer/c/<cid:int>/numbers/<number:re:[0-9]{1,20}>/delete")
    @web.login_required
    def delete_number(cid, number):
        campaign_or_404(db(), cid)
        done = store.delete_phone(db(), number, cid)
        web.log.info("dialer: %s deleted %s from campaign %d", web.user(), number, cid)
        return web.redirect_with(back_url(cid), notice=web.t("num.deleted" if done else "num.gone", number=number))

    @app.post("/dialer/c/<cid:int>/numbers/clear")
    @web.login_required
    def clear_numbers(cid):
        campaign_or_404(db(), cid)
        n = store.clear_phones(db(), cid)
        web.log.info("dialer: %s cleared the list of campaign %d (%d numbers)", web.user(), cid, n)
        return web.redirect_with(base(cid), notice=web.t("num.cleared", n=n))

    @app.post("/dialer/c/<cid:int>/numbers/import")
    @web.login_required
    def import_numbers(cid):
        campaign_or_404(db(), cid)
        replace = req.forms.getunicode("mode") == "replace"
        too_big = {"import-file": web.t("import.too_big", mb=f"{limit / 1e6:g}")}
        if (req.content_length or 0) > limit + 65536:
            return web.redirect_with(base(cid), errors=too_big, anchor="import-form")
        pasted, upload = req.POST.get("text"), req.POST.get("file")
        # A big pasted list may arrive as a spooled part (a FileUpload without a name): read it too.
        text = (pasted.file.read().decode("utf-8", errors="replace") if isinstance(pasted, bottle.FileUpload)
                else pasted if isinstance(pasted, str) else "")
        # bottle hands form values over as latin-1 decoded bytes; getunicode re-decodes them as UTF-8.
        if isinstance(pasted, str):
            text = req.forms.getunicode("text") or ""
        keep = {"import-text": text if len(text) <= KEEP_TEXT else ""}
        data: "str | bytes" = text
        source = "paste"
        if isinstance(upload, bottle.FileUpload) and upload.filename:
            data = upload.file.read(limit + 1)
            source = upload.raw_filename or upload.filename
            if len(data) > limit:
                return web.redirect_with(base(cid), errors=too_big, form=keep, anchor="import-form")
        if not (data.strip() if isinstance(data, str) else data):
            return web.redirect_with(base(cid), errors={"import-text": web.t("num.import.none")}, form=keep)
        try:
            parsed = listimport.read(data, rules, source, max_bytes=limit)
        except ImportProblem as e:
            return web.redirect_with(base(cid), errors={_field(source): web.t(e.key, **e.params)}, form=keep)
        except MediaError as e:
            return web.redirect_with(base(cid), errors={"import-file": e.text(web.lang())}, form=keep)
        c = db()
        res = listimport.apply(c, parsed, cid, replace=replace)
        rid = listimport.save(c, res, cid, web.user() or "", source, replace)
        web.log.info("dialer: %s imported %s into campaign %d%s: %s", web.user(), source, cid,
                     " (replacing the list)" if replace else "",
                     parsed.summary(res.counts["added"], res.counts["updated"]))
        # Rejected pasted lines go back into the box to be corrected and sent again.
        again = "\n".join(line for _, line, _ in parsed.rejected) if source == "paste" else ""
        return web.redirect_with(view_url(cid, report=rid), form={"import-text": again[:KEEP_TEXT]},
                                 anchor="report")

    @app.get("/dialer/c/<cid:int>/numbers/report/<rid:int>.csv")
    @web.login_required
    def report_csv(cid, rid):
        rep = listimport.report(db(), rid)
        if rep is None or rep["campaign_id"] != cid:
            raise bottle.HTTPError(404)
        bottle.response.content_type = "text/csv; charset=utf-8"
        bottle.response.set_header("Content-Disposition", f'attachment; filename="import-{rid}.csv"')
        return listimport.csv_lines(db(), rid)


def _field(source: str) -> str:
    return "import-text" if source == "paste" else "import-file"


def _int(v: Optional[str], default: int) -> int:
    try:
        return int(v or "")
    except ValueError:
        return default


def _page_links(page: int, pages: int) -> list:
    """Page numbers to link: the first, the last and two either side of the current one (None: a gap)."""
    want = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    out: list = []
    for p in want:
        if out and p - out[-1] > 1:
            out.append(None)
        out.append(p)
    return out


def _line_text(web, kind: str, line: Dict[str, Any]) -> Dict[str, str]:
    """A report line for the page: line number, number (or input text) and what happened, translated."""
    d = line["detail"]
    if kind == "rejected":
        return {"no": str(line["line"]), "what": line["text"], "detail": web.t(d.get("key", ""))}
    if kind == "updated":
        ch = [f"{web.t('ch.' + k)}: «{d[k][0]}» → «{d[k][1]}»" for k in ("digit", "comment") if k in d]
        detail = "; ".join(ch) or web.t("rep.nochange")
    elif kind == "merged":
        detail = web.t("rep.merged", line=d["by"])
    else:
        detail = " · ".join(v for v in (line["digit"] and f"{web.t('ch.digit')} {line['digit']}", line["comment"])
                            if v)
    return {"no": str(line["line"]), "what": line["number"], "detail": detail}
