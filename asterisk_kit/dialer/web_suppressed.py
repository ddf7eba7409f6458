"""The do-not-call list `/dialer/suppressed`: view (search, pages), add, remove, import (behind the login).

Numbers land here when a callee presses a campaign's opt-out digit (source `run N`, written by the
runner), when staff add one on this page (`page:USER`) or import a list (`import:USER`); every run
skips them. The list may hold 100 000+ numbers, so it is shown a page at a time by an index on the
time added. Every form answers with a redirect (post/redirect/get): errors at the top with a link
to their field, the typed input kept.
"""
from __future__ import annotations

import datetime as dt
import re
import time
from typing import Dict, List, Optional, Tuple

import bottle

from .. import storage
from . import schedule, store
from .listfiles import OLE_MAGIC, read_csv, read_xlsx
from .media_strings import STRINGS as MEDIA_STRINGS
from .media_strings import MediaError
from .numbers import BadNumber, NumberRules

PATH = "/dialer/suppressed"
PAGE_SIZE = 100
NOTE_MAX = 200
REPORT_LINES = 100      # rejected lines listed by an import report (the count is always exact)
MIGRATIONS = [
    # Pages newest first, whatever the list's size.
    "CREATE INDEX dialer_suppressed_added ON dialer_suppressed (added DESC, number)",
]
_PHONEISH = re.compile(r"[0-9+\s()\-.]+")
_SEPARATORS = re.compile(r"[\s()\-.+]")

STRINGS = {
    "ru": {
        "sup.title": "Не звонить",
        "sup.intro": "Номера из этого списка не набирает ни одна кампания. Сюда попадает номер, когда абонент "
                     "нажимает цифру отказа, или когда его добавили вручную либо загрузили списком.",
        "sup.count": "В списке: {n}",
        "sup.found": "Найдено: {n} из {total}",
        "sup.search": "Поиск по номеру или примечанию",
        "sup.search.submit": "Найти",
        "sup.search.reset": "Сбросить",
        "sup.number": "Номер",
        "sup.added": "Добавлен",
        "sup.source": "Откуда",
        "sup.note": "Примечание",
        "sup.empty": "Список пуст.",
        "sup.nothing": "Ничего не найдено.",
        "sup.add": "Добавить номер",
        "sup.add.submit": "Добавить",
        "sup.remove": "Убрать",
        "sup.remove.confirm": "Убрать номер {number} из списка «Не звонить»? Кампании снова смогут ему звонить.",
        "sup.added.one": "Номер {number} добавлен в список.",
        "sup.already": "Номер {number} уже в списке.",
        "sup.removed": "Номер {number} убран из списка.",
        "sup.not_there": "Номера {number} нет в списке.",
        "sup.note.long": "Примечание длиннее {n} символов.",
        "sup.import": "Загрузить список",
        "sup.import.hint": "Вставьте номера (по одному в строке, после номера через ; можно примечание) "
                           "или выберите файл CSV или Excel (.xlsx): первый столбец — номер, второй — примечание.",
        "sup.import.text": "Номера",
        "sup.import.file": "Файл CSV или XLSX",
        "sup.import.submit": "Загрузить",
        "sup.import.nothing": "Вставьте номера или выберите файл.",
        "sup.import.too_big": "Файл больше {mb} МБ — разделите его на части.",
        "sup.import.result": "Добавлено: {added}, уже были в списке: {already}, отклонено: {rejected}.",
        "sup.import.line": "Строка {no} «{line}»: {reason}",
        "sup.import.more": "… и ещё {n} строк(и)",
        "sup.src.run": "отказ в запуске #{id}",
        "sup.src.page": "добавил {user}",
        "sup.src.import": "загрузил {user}",
        "sup.prev": "← назад",
        "sup.next": "дальше →",
        "sup.page": "Страница {page} из {pages}",
    },
    "en": {
        "sup.title": "Do not call",
        "sup.intro": "No campaign dials a number on this list. A number gets here when the callee presses the "
                     "opt-out digit, or when staff add it by hand or import a list.",
        "sup.count": "On the list: {n}",
        "sup.found": "Found: {n} of {total}",
        "sup.search": "Search by number or note",
        "sup.search.submit": "Search",
        "sup.search.reset": "Reset",
        "sup.number": "Number",
        "sup.added": "Added",
        "sup.source": "Source",
        "sup.note": "Note",
        "sup.empty": "The list is empty.",
        "sup.nothing": "Nothing found.",
        "sup.add": "Add a number",
        "sup.add.submit": "Add",
        "sup.remove": "Remove",
        "sup.remove.confirm": "Remove {number} from the do-not-call list? Campaigns may call it again.",
        "sup.added.one": "{number} added to the list.",
        "sup.already": "{number} is already on the list.",
        "sup.removed": "{number} removed from the list.",
        "sup.not_there": "{number} is not on the list.",
        "sup.note.long": "The note is longer than {n} characters.",
        "sup.import": "Import a list",
        "sup.import.hint": "Paste numbers (one per line, optionally ; and a note after the number) or choose a "
                           "CSV or Excel (.xlsx) file: first column the number, second the note.",
        "sup.import.text": "Numbers",
        "sup.import.file": "CSV or XLSX file",
        "sup.import.submit": "Import",
        "sup.import.nothing": "Paste numbers or choose a file.",
        "sup.import.too_big": "The file is larger than {mb} MB: split it into parts.",
        "sup.import.result": "Added: {added}, already on the list: {already}, rejected: {rejected}.",
        "sup.import.line": "Line {no} “{line}”: {reason}",
        "sup.import.more": "… and {n} more line(s)",
        "sup.src.run": "opted out in run #{id}",
        "sup.src.page": "added by {user}",
        "sup.src.import": "imported by {user}",
        "sup.prev": "← previous",
        "sup.next": "next →",
        "sup.page": "Page {page} of {pages}",
    },
}


# ---- queries (the store's suppress/unsuppress write; these read a page at a time) -----------------

def _filter(search: str) -> Tuple[str, tuple]:
    s = (search or "").strip()
    if not s:
        return "1", ()
    if _PHONEISH.fullmatch(s) and re.search(r"[0-9]", s):
        s = _SEPARATORS.sub("", s)
    like = "%" + s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return "(number LIKE ? ESCAPE '\\' OR note LIKE ? ESCAPE '\\')", (like, like)


def count(conn, search: str = "") -> int:
    where, args = _filter(search)
    return conn.execute(f"SELECT count(*) FROM dialer_suppressed WHERE {where}", args).fetchone()[0]


def page(conn, search: str = "", offset: int = 0, limit: int = PAGE_SIZE):
    where, args = _filter(search)
    return conn.execute(f"SELECT number, added, source, note FROM dialer_suppressed WHERE {where} "
                        "ORDER BY added DESC, number LIMIT ? OFFSET ?", (*args, int(limit), int(offset))).fetchall()


def add_many(conn, numbers: Dict[str, str], source: str) -> int:
    """Put NUMBERS (number -> note) on the list in one transaction; returns how many were new (a number
    already there keeps its first source and note)."""
    now = time.time()
    with storage.transaction(conn):
        return conn.executemany("INSERT OR IGNORE INTO dialer_suppressed (number, added, source, note) "
                                "VALUES (?, ?, ?, ?)", [(n, now, source, note) for n, note in numbers.items()]).rowcount


def source_text(web, source: str) -> Tuple[str, Optional[str]]:
    """(what the page shows, link or None) for a row's source."""
    m = re.fullmatch(r"run (\d+)", source or "")
    if m:
        return web.t("sup.src.run", id=m.group(1)), f"/dialer/runs/{m.group(1)}"
    kind, _, user = (source or "").partition(":")
    if kind in ("page", "import") and user:
        return web.t(f"sup.src.{kind}", user=user), None
    return source or "", None


def read_entries(data, rules: NumberRules, is_file: bool):
    """(numbers with notes, rejected [(line, text, reason key)], lines read) of a paste or an uploaded
    CSV/XLSX; MediaError when the input as a whole cannot be read."""
    if is_file and isinstance(data, bytes) and (data.startswith(b"PK\x03\x04") or data.startswith(OLE_MAGIC)):
        rows = read_xlsx(data)
    else:
        rows = read_csv(data)
    good: Dict[str, str] = {}
    rejected: List[Tuple[int, str, str]] = []
    read = 0
    for no, raw, note in rows:
        read += 1
        try:
            number = rules.number(raw)
        except BadNumber as e:
            rejected.append((no, raw, e.key))
            continue
        good.setdefault(number, " ".join(note.split())[:NOTE_MAX])
    return good, rejected, read


def register(web) -> None:
    app, req = web.app, bottle.request
    web.strings(MEDIA_STRINGS)
    web.strings(STRINGS)
    rules = NumberRules.from_config(web.cfg)
    conn = web.db
    storage.migrate(conn(), "dialer_suppressed_pages", MIGRATIONS)
    zone = schedule.tz(web.cfg)

    def when(ts: float) -> str:
        return dt.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M")

    def here(q: str = "", page_no: int = 1) -> str:
        from urllib.parse import urlencode
        params = {k: v for k, v in (("q", q), ("page", str(page_no) if page_no > 1 else "")) if v}
        return PATH + ("?" + urlencode(params) if params else "")

    @app.get(PATH)
    @web.login_required
    def suppressed_page():
        c = conn()
        f = web.flashed()
        q = (req.query.getunicode("q") or "").strip()[:100]
        try:
            page_no = max(1, int(req.query.get("page") or 1))
        except ValueError:
            page_no = 1
        total = count(c, "")
        found = count(c, q) if q else total
        pages = max(1, -(-found // PAGE_SIZE))
        page_no = min(page_no, pages)
        rows = [{"number": r["number"], "added": when(r["added"]), "source": source_text(web, r["source"]),
                 "note": r["note"]} for r in page(c, q, (page_no - 1) * PAGE_SIZE)]
        return web.render("dialer_suppressed.html", dnav="suppressed", rows=rows, q=q, total=total, found=found,
                          page_no=page_no, pages=pages, here=here, errors=f["errors"], form=f["form"],
                          notice=f["notice"])

    @app.post(PATH)
    @web.login_required
    def suppress_one():
        form = {"number": req.forms.getunicode("number") or "", "note": req.forms.getunicode("note") or ""}
        errors = {}
        try:
            number = rules.number(form["number"])
        except BadNumber as e:
            errors["sup-number"] = web.t(e.key)
        note = " ".join(form["note"].split())
        if len(note) > NOTE_MAX:
            errors["sup-note"] = web.t("sup.note.long", n=NOTE_MAX)
        if errors:
            web.redirect_with(PATH, errors=errors, form=form, anchor="form-errors")
        added = store.suppress(conn(), [number], f"page:{web.user()}", note)
        web.log.info("dialer: %s put %s on the do-not-call list", web.user(), number)
        web.redirect_with(PATH, notice=web.t("sup.added.one" if added else "sup.already", number=number))

    @app.post(PATH + "/<number:re:[0-9]{1,20}>/delete")
    @web.login_required
    def unsuppress(number):
        gone = store.unsuppress(conn(), number)
        if gone:
            web.log.info("dialer: %s removed %s from the do-not-call list", web.user(), number)
        back = req.forms.getunicode("back") or ""
        target = back if back.startswith(PATH) and "\n" not in back and "\r" not in back else PATH
        web.redirect_with(target, notice=web.t("sup.removed" if gone else "sup.not_there", number=number))

    @app.post(PATH + "/import")
    @web.login_required
    def suppress_import():
        limit = web.cfg["dialer"]["import_max_bytes"]
        text = req.forms.getunicode("text") or ""
        upload = req.files.get("file")
        data: "str | bytes" = text
        is_file = isinstance(upload, bottle.FileUpload) and bool(upload.filename)
        if is_file:
            data = upload.file.read(limit + 1)
            if len(data) > limit:
                web.redirect_with(PATH, errors={"sup-file": web.t("sup.import.too_big", mb=f"{limit / 1e6:g}")},
                                  form={"text": text}, anchor="form-errors")
        elif not text.strip():
            web.redirect_with(PATH, errors={"sup-text": web.t("sup.import.nothing")}, anchor="form-errors")
        try:
            good, rejected, _read = read_entries(data, rules, is_file)
        except MediaError as e:
            web.redirect_with(PATH, errors={"sup-file" if is_file else "sup-text": web.t(e.key, **e.params)},
                              form={"text": text}, anchor="form-errors")
        added = add_many(conn(), good, f"import:{web.user()}")
        summary = web.t("sup.import.result", added=added, already=len(good) - added, rejected=len(rejected))
        lines = [web.t("sup.import.line", no=no, line=line.strip()[:80], reason=web.t(key))
                 for no, line, key in rejected[:REPORT_LINES]]
        if len(rejected) > REPORT_LINES:
            lines.append(web.t("sup.import.more", n=len(rejected) - REPORT_LINES))
        web.log.info("dialer: %s imported a do-not-call list: %d added, %d already there, %d rejected",
                     web.user(), added, len(good) - added, len(rejected))
        # Rejected pasted lines stay in the box, to be corrected and sent again (a file wins over the box,
        # whose text is then kept as it was).
        kept = text if is_file else "\n".join(line for _, line, _ in rejected)
        web.redirect_with(PATH, notice=summary, form={"text": kept, "report": "\n".join(lines)}, anchor="import")
