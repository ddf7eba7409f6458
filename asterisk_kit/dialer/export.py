"""A run's results as XLSX or CSV, streamed row by row (used by the campaign pages to come).

Input: any iterable of row dicts (e.g. a cursor over the run's calls), one per number:

    {"number": "89161234567",       # str
     "comment": "Иванов, склад",    # str ("" or missing: empty)
     "attempts": 2,                 # int
     "first_call": 1763880000.0,    # first dial: epoch seconds, an aware datetime, or None
     "last_call": 1763880300.0,     # last dial: same
     "outcome": "answered",         # answered | busy | no_answer | failed | withdrawn | pending | spooled | …
     "digit": "1",                  # digit pressed in the IVR, "" if none
     "opted_out": False}            # the callee asked not to be called again

Times are shown in the PBX's time zone (`tz`); outcomes and headers in the staff's language
(`lang`, ru or en), unknown outcome keys as they are.

**CSV for Russian Excel**: UTF-8 with a BOM and `;` between fields. Excel opens a double-clicked
CSV with the Windows "list separator", which is `;` wherever the decimal mark is `,` (Russian
locale), and reads it as the ANSI code page (cp1251) unless the file starts with a UTF-8 BOM. A
`sep=;` first line would force the separator but makes Excel ignore the BOM (mojibake), so it is
not written.

**No formulas from data** (CSV/Excel injection): in the CSV, a text field starting with `=`, `+`,
`-`, `@`, tab or CR gets a leading `'` (OWASP's advice), so Excel shows it as text. In the XLSX,
every text cell is written as a string cell (type `s`, never `f`), which Excel never evaluates,
so the text stays exact (openpyxl on its own would turn a string starting with `=` into a formula).

Streaming: CSV is produced line by line (`csv_chunks` for a web response, `write_csv` for a file);
XLSX uses openpyxl's write-only mode, which writes each row to a temporary file as it comes, so
memory does not grow with the number of rows (benchmarks/dialer_export.py: 200 000 rows).
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Union
from zoneinfo import ZoneInfo

COLUMNS = ("number", "comment", "attempts", "first_call", "last_call", "outcome", "digit", "opted_out")

HEADERS = {
    "ru": ("Номер", "Комментарий", "Попыток", "Первый звонок", "Последний звонок", "Итог", "Нажатая цифра",
           "Отказ от звонков"),
    "en": ("Number", "Comment", "Attempts", "First call", "Last call", "Outcome", "Digit pressed", "Opted out"),
}
OUTCOMES = {
    "ru": {"answered": "ответил", "busy": "занято", "no_answer": "не ответил", "failed": "ошибка",
           "withdrawn": "отозван", "pending": "ожидает", "spooled": "звоним", "opted_out": "отказ"},
    "en": {"answered": "answered", "busy": "busy", "no_answer": "no answer", "failed": "failed",
           "withdrawn": "withdrawn", "pending": "waiting", "spooled": "calling", "opted_out": "opted out"},
}
YES = {"ru": "да", "en": "yes"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """Text that Excel would take for a formula gets a leading apostrophe (shown as text)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Rows:
    """Turns row dicts into display values for one language and time zone."""

    def __init__(self, lang: str, tz: Union[str, ZoneInfo, None]):
        self.lang = lang if lang in HEADERS else "ru"
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.outcomes = OUTCOMES[self.lang]

    def when(self, v: Any) -> Optional[datetime]:
        """Local naive datetime to the second (Excel has no zones), or None."""
        if v is None or v == "":
            return None
        if isinstance(v, datetime):
            dt = (v if v.tzinfo else v.replace(tzinfo=timezone.utc)).astimezone(self.tz)
        else:
            dt = datetime.fromtimestamp(float(v), self.tz)
        return dt.replace(microsecond=0, tzinfo=None)

    def values(self, r: Dict[str, Any]) -> List[Any]:
        outcome = str(r.get("outcome") or "")
        return [str(r.get("number") or ""), str(r.get("comment") or ""), int(r.get("attempts") or 0),
                self.when(r.get("first_call")), self.when(r.get("last_call")),
                self.outcomes.get(outcome, outcome), str(r.get("digit") or ""),
                YES[self.lang] if r.get("opted_out") else ""]

    def csv_values(self, r: Dict[str, Any]) -> List[Any]:
        first, last = self.when(r.get("first_call")), self.when(r.get("last_call"))
        outcome = str(r.get("outcome") or "")
        return [neutralise(str(r.get("number") or "")), neutralise(str(r.get("comment") or "")),
                int(r.get("attempts") or 0), first.isoformat(" ") if first else "",
                last.isoformat(" ") if last else "", neutralise(self.outcomes.get(outcome, outcome)),
                neutralise(str(r.get("digit") or "")), YES[self.lang] if r.get("opted_out") else ""]


# ---- CSV ---------------------------------------------------------------------------------------

class _Line(io.StringIO):
    """csv.writer target that hands back each written line."""

    def take(self) -> str:
        s = self.getvalue()
        self.seek(0)
        self.truncate()
        return s


def csv_chunks(rows: Iterable[Dict[str, Any]], lang: str = "ru", tz: Union[str, ZoneInfo, None] = None,
               batch: int = 500) -> Iterator[bytes]:
    """The CSV as UTF-8 byte chunks (BOM first), `batch` rows per chunk: for a streamed HTTP response."""
    conv = _Rows(lang, tz)
    buf = _Line()
    w = csv.writer(buf, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    w.writerow(HEADERS[conv.lang])
    yield "\ufeff".encode("utf-8") + buf.take().encode("utf-8")
    n = 0
    for r in rows:
        w.writerow(conv.csv_values(r))
        n += 1
        if n % batch == 0:
            yield buf.take().encode("utf-8")
    rest = buf.take()
    if rest:
        yield rest.encode("utf-8")


def write_csv(rows: Iterable[Dict[str, Any]], out: IO[bytes], lang: str = "ru",
              tz: Union[str, ZoneInfo, None] = None) -> None:
    for chunk in csv_chunks(rows, lang, tz):
        out.write(chunk)


# ---- XLSX --------------------------------------------------------------------------------------

def write_xlsx(rows: Iterable[Dict[str, Any]], out: Union[str, IO[bytes]], lang: str = "ru",
               tz: Union[str, ZoneInfo, None] = None, title: str = "") -> None:
    """The XLSX to OUT (a path or a binary file object), one sheet, header row frozen."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    conv = _Rows(lang, tz)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(_sheet_title(title or ("Результаты" if conv.lang == "ru" else "Results")))
    ws.freeze_panes = "A2"
    for col, width in {"A": 14, "B": 40, "C": 9, "D": 19, "E": 19, "F": 14, "G": 9, "H": 10}.items():
        ws.column_dimensions[col].width = width
    bold = Font(bold=True)
    header = []
    for h in HEADERS[conv.lang]:
        c = WriteOnlyCell(ws, value=h)
        c.font = bold
        header.append(c)
    ws.append(header)
    for r in rows:
        line = []
        for v in conv.values(r):
            if isinstance(v, str):
                # A string cell, even when it starts with "=": openpyxl would otherwise write a formula.
                c = WriteOnlyCell(ws, value=v)
                c.data_type = "s"
                line.append(c)
            elif isinstance(v, datetime):
                c = WriteOnlyCell(ws, value=v)
                c.number_format = "yyyy-mm-dd hh:mm:ss"
                line.append(c)
            else:
                line.append(v)
        ws.append(line)
    wb.save(out)


def _sheet_title(t: str) -> str:
    # Excel forbids []:*?/\ in sheet names and allows 31 characters.
    return "".join("_" if ch in "[]:*?/\\" else ch for ch in t)[:31] or "Sheet"
