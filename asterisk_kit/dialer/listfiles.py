"""Phone lists from files staff bring: XLSX (Excel) and CSV (Excel's or anyone's), read as a stream.

Both readers yield `(line_no, number_text, comment)`: the row or line number as the staff see it
in Excel or an editor, the number cell as text (normalised and checked later by
numbers.NumberRules) and the comment ("" if none). Rows without a number are skipped.

Columns: a first row naming the columns is recognised (number: a title containing
телефон/phone/номер/number/тел/mobile; comment: коммент/comment/примечан/note); otherwise the first
column is the number and the second the comment.

XLSX: only the first sheet, read with openpyxl's read-only mode row by row. Before openpyxl sees
the file: it must be a zip (an old .xls or a password-protected file, both OLE containers, get
their own message), its parts may unpack to at most `max_unpacked` bytes (zipfile never unpacks
more than a part's declared size, so the declared sizes bound the real work: a zip bomb is
refused up front), and a streamed pre-scan refuses a sheet with more than `max_rows` rows or
`max_cols` cells in a row (openpyxl holds one whole row in memory). Errors are MediaError with a
key from media_strings (ru/en).

CSV: the bytes are UTF-8 (with or without BOM) when they decode as strict UTF-8, otherwise
Windows-1251 (what Russian Excel writes with "CSV (разделители - запятые)"); the separator is tab,
else `;`, else `,` (whichever appears first in that order in the first lines, like numbers.parse_bulk).
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path
from typing import IO, Any, Iterator, List, Optional, Tuple, Union
from xml.etree.ElementTree import ParseError, XMLPullParser

from .media_strings import MediaError

Row = Tuple[int, str, str]
Source = Union[bytes, str, Path, IO[bytes]]

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")
_NUMBER_TITLE = re.compile(r"телефон|phone|номер|number|^тел|mobile|мобильн", re.I)
_COMMENT_TITLE = re.compile(r"коммент|comment|примечан|note|описание", re.I)
_NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _header(cells: List[str]) -> Optional[Tuple[int, Optional[int]]]:
    """(number column, comment column or None) if this row names its columns, else None."""
    texts = [c.strip() for c in cells]
    if any(re.search(r"[0-9]{5}", t) for t in texts):
        return None  # a row with a phone number in it is data, whatever else it says
    num = next((i for i, t in enumerate(texts) if _NUMBER_TITLE.search(t)), None)
    if num is None:
        return None
    com = next((i for i, t in enumerate(texts) if i != num and _COMMENT_TITLE.search(t)), None)
    return num, com


def _rows_to_entries(rows: Iterator[Tuple[int, List[str]]]) -> Iterator[Row]:
    cols: Optional[Tuple[int, Optional[int]]] = None
    seen_data = False
    for no, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        if cols is None:
            cols = _header(cells)
            if cols is not None:
                continue
            cols = (0, 1)
        num_i, com_i = cols
        number = cells[num_i].strip() if num_i < len(cells) else ""
        comment = cells[com_i].strip() if com_i is not None and com_i < len(cells) else ""
        if number:
            seen_data = True
            yield no, number, comment
    if not seen_data:
        raise MediaError("list.empty")


# ---- XLSX --------------------------------------------------------------------------------------

def _cell_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # 89161234567 typed into Excel is a number cell
    return str(v)


class XlsxList:
    """`for line_no, number, comment in XlsxList(src): ...` (checks run in the constructor)."""

    def __init__(self, src: Source, max_bytes: int = 20 * 1024 * 1024, max_unpacked: int = 100 * 1024 * 1024,
                 max_rows: int = 200_000, max_cols: int = 200):
        self.max_rows, self.max_cols = max_rows, max_cols
        data = _read_limited(src, max_bytes)
        if not data:
            raise MediaError("list.empty")
        if data.startswith(OLE_MAGIC):
            raise MediaError("list.encrypted" if _ENCRYPTED in data else "list.not_xlsx")
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise MediaError("list.not_xlsx") from None
        names = set(self.zip.namelist())
        if "xl/workbook.xml" not in names:
            raise MediaError("list.not_xlsx")
        if sum(i.file_size for i in self.zip.infolist()) > max_unpacked:
            raise MediaError("list.too_big", limit_mb=f"{max_unpacked / (1024 * 1024):g}")
        self.data = data

    def _prescan(self, part: str) -> None:
        """Rows and cells per row of a sheet part, counted without building it (bounded memory)."""
        rows = 0
        parser: Any = XMLPullParser(events=("start", "end"))
        cells = 0
        with self.zip.open(part) as f:
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                parser.feed(chunk)
                for ev, el in parser.read_events():
                    if ev == "start" and el.tag == _NS_MAIN + "row":
                        rows += 1
                        cells = 0
                        if rows > self.max_rows + 1:
                            raise MediaError("list.too_many_rows", limit=self.max_rows)
                    elif ev == "start" and el.tag == _NS_MAIN + "c":
                        cells += 1
                        if cells > self.max_cols:
                            raise MediaError("list.too_big_row", limit=self.max_cols)
                    elif ev == "end" and el.tag in (_NS_MAIN + "row", _NS_MAIN + "c"):
                        el.clear()

    def __iter__(self) -> Iterator[Row]:
        from openpyxl import load_workbook
        try:
            wb = load_workbook(io.BytesIO(self.data), read_only=True, data_only=True)
        except (KeyError, ValueError, zipfile.BadZipFile, ParseError, OSError, TypeError) as e:
            raise MediaError("list.not_xlsx") from e
        try:
            if not wb.worksheets:
                raise MediaError("list.empty")
            ws = wb.worksheets[0]
            part = getattr(ws, "_worksheet_path", None) or ""
            try:
                if part in self.zip.namelist():
                    self._prescan(part)
            except (ParseError, zipfile.BadZipFile) as e:
                raise MediaError("list.not_xlsx") from e
            ws.reset_dimensions()  # some writers state a wrong used range; read what is there
            rows = ((no, [_cell_text(v) for v in vals])
                    for no, vals in enumerate(ws.iter_rows(values_only=True), 1))
            yield from _rows_to_entries(rows)
        finally:
            wb.close()


def read_xlsx(src: Source, **limits) -> Iterator[Row]:
    """Checks the file now (MediaError), then yields rows lazily."""
    return iter(XlsxList(src, **limits))


def _read_limited(src: Source, max_bytes: int) -> bytes:
    if isinstance(src, (bytes, bytearray)):
        data = bytes(src)
    elif isinstance(src, (str, Path)):
        with open(src, "rb") as f:
            data = f.read(max_bytes + 1)
    else:
        data = src.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise MediaError("list.too_big", limit_mb=f"{max_bytes / (1024 * 1024):g}")
    return data


# ---- CSV ---------------------------------------------------------------------------------------

def decode_text(data: bytes) -> str:
    """UTF-8 (BOM or not) if it decodes strictly, else Windows-1251 (cp1251 decodes almost anything,
    so it can only be the fallback: UTF-8 Cyrillic is never valid as both)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1251")
    except UnicodeDecodeError:  # 0x98 is the one byte cp1251 leaves undefined
        raise MediaError("list.encoding") from None


def sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:5])
    return "\t" if "\t" in sample else (";" if ";" in sample else ",")


def read_csv(data: Union[bytes, str], max_rows: int = 200_000) -> Iterator[Row]:
    """Rows of a CSV (or one-number-per-line) file; line numbers count physical lines."""
    text = decode_text(data) if isinstance(data, (bytes, bytearray)) else data
    if not text.strip():
        raise MediaError("list.empty")
    delim = sniff_delimiter(text)

    def rows():
        for no, line in enumerate(text.splitlines(), 1):
            if no > max_rows + 1:
                raise MediaError("list.too_many_rows", limit=max_rows)
            yield no, next(csv.reader([line], delimiter=delim), [])
    return _rows_to_entries(rows())
