"""Imported phone lists (page paste, page upload, `dialer import`): read whole, reported exactly.

Office staff have Excel's CSV (Windows-1251 on a Russian Windows, UTF-8 with a BOM, or "Unicode text",
i.e. UTF-16), plain text, or the old tool's todo.json. Bytes are decoded as UTF-8 (BOM or not), UTF-16
(BOM, or the NUL bytes of UTF-16 text), else Windows-1251; the report names the encoding used. Every
non-empty line (every item of todo.json) ends up counted once: stored, merged with an earlier line of
the same number, or rejected with its reason. Input that cannot be read at all raises ImportProblem.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Tuple, Union

from .numbers import BadNumber, Entry, NumberRules, comment, digit

MAX_LINE = 1000        # characters; a longer line is rejected (no number, digit and comment need more)
_HEADER = ("number", "phone", "номер", "телефон")


class ImportProblem(ValueError):
    """The input as a whole cannot be read; `key` and `params` for the page's translation."""

    def __init__(self, key: str, text: str, **params):
        super().__init__(text)
        self.key, self.params = key, params


@dataclass
class Parsed:
    entries: List[Entry] = field(default_factory=list)
    rejected: List[Tuple[int, str, BadNumber]] = field(default_factory=list)
    encoding: str = "UTF-8"
    read: int = 0              # non-empty lines (or todo.json items), header included
    duplicates: int = 0        # lines whose number an earlier line already had (the last one wins)
    header: bool = False       # the first line was a header and skipped
    line_of: Dict[str, int] = field(default_factory=dict)                 # number -> the line that set it
    merged: List[Tuple[int, str, int]] = field(default_factory=list)      # (line, number, later line that won)

    def summary(self, added: int, updated: int) -> str:
        return (f"{self.read} line(s) read ({self.encoding}): {added} added, {updated} updated, "
                f"{self.duplicates} duplicate(s) merged, {len(self.rejected)} rejected"
                + (", header line skipped" if self.header else ""))


def decode(data: bytes) -> Tuple[str, str]:
    """(text, encoding name) of an uploaded file; never fails (undecodable bytes of a Windows-1251 file
    that is really something else show as U+FFFD in comments and make numbers invalid, never vanish)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace"), "UTF-8"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), "UTF-16"
    sample = data[:4000]
    if len(sample) >= 4 and sample.count(0) * 10 > len(sample):      # UTF-16 without BOM: text has no NULs
        le = sample[1::2].count(0) > sample[0::2].count(0)
        return data.decode("utf-16-le" if le else "utf-16-be", errors="replace"), "UTF-16"
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        return data.decode("cp1251", errors="replace"), "Windows-1251"


def read_list(data: Union[bytes, str], rules: NumberRules) -> Parsed:
    if isinstance(data, bytes):
        text, enc = decode(data)
    else:
        text, enc = data.lstrip("\ufeff"), "UTF-8"
    out = Parsed(encoding=enc)
    if text.lstrip().startswith("["):
        _read_todo(text, rules, out)
    else:
        _read_lines(text, rules, out)
    return out


def _accept(out: Parsed, seen: Dict[str, Entry], e: Entry, no: int) -> None:
    if e.number in seen:
        out.duplicates += 1
        out.merged.append((out.line_of[e.number], e.number, no))
        del seen[e.number]
    seen[e.number] = e
    out.line_of[e.number] = no


def read_rows(rows: Iterable[Tuple[int, str, str]], rules: NumberRules, encoding: str = "XLSX") -> Parsed:
    """Rows of a spreadsheet (listfiles: line number, number cell, comment cell; no digit column)."""
    out = Parsed(encoding=encoding)
    seen: Dict[str, Entry] = {}
    for no, number, note in rows:
        out.read += 1
        try:
            _accept(out, seen, Entry(rules.number(number), "", comment(note)), no)
        except BadNumber as err:
            out.rejected.append((no, f"{number}\t{note}" if note else number, err))
    out.entries = list(seen.values())
    return out


def _read_lines(text: str, rules: NumberRules, out: Parsed) -> None:
    """One number per line, or `number[,;\\t]digit[,;\\t]comment`; lines split the way Asterisk would
    split them (CR and U+2028 too), so nothing can hide a second line inside one."""
    lines = text.splitlines()
    sample = "\n".join(lines[:5])
    delim = "\t" if "\t" in sample else (";" if ";" in sample else ",")
    seen: Dict[str, Entry] = {}
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        out.read += 1
        if len(line) > MAX_LINE:
            out.rejected.append((no, line[:80], BadNumber("line.long", f"line longer than {MAX_LINE} characters")))
            continue
        if '"' not in line:
            fields = line.split(delim)          # what csv would give, much faster (200 000-line lists)
        else:
            try:
                fields = next(csv.reader(io.StringIO(line), delimiter=delim), [""])
            except csv.Error as err:
                out.rejected.append((no, line, BadNumber("line.csv", f"not a CSV line ({err})")))
                continue
        fields = [f.strip() for f in fields] + ["", ""]
        if out.read == 1 and not re.search(r"[0-9]", fields[0]) and fields[0].lower() in _HEADER:
            out.header = True
            continue
        try:
            _accept(out, seen, Entry(rules.number(fields[0]), digit(fields[1]), comment(fields[2])), no)
        except BadNumber as err:
            out.rejected.append((no, line, err))
    out.entries = list(seen.values())


def _text(v) -> str:
    # `"dtmf": 0` or `"comment": 0` are values, not absent ones; null and a missing key are empty.
    return "" if v is None else str(v)


def _read_todo(text: str, rules: NumberRules, out: Parsed) -> None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ImportProblem("import.json", f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}",
                            line=e.lineno, col=e.colno) from None
    except RecursionError:
        raise ImportProblem("import.nested", "JSON nested too deeply for a list of numbers") from None
    if not isinstance(data, list):
        raise ImportProblem("import.notlist", "todo.json: expected a JSON list of numbers or "
                                              "{number, dtmf, comment} objects")
    seen: Dict[str, Entry] = {}
    for i, item in enumerate(data, 1):
        out.read += 1
        if isinstance(item, (str, int)) and not isinstance(item, bool):
            item = {"number": str(item)}
        if not isinstance(item, dict):
            shown = "[…]" if isinstance(item, list) else _short(item)
            out.rejected.append((i, shown, BadNumber("number.chars", "not a number or object")))
            continue
        try:
            _accept(out, seen, Entry(rules.number(_text(item.get("number"))), digit(_text(item.get("dtmf"))),
                                     comment(_text(item.get("comment")))), i)
        except BadNumber as err:
            out.rejected.append((i, _short(item), err))
    out.entries = list(seen.values())


def _short(item) -> str:
    try:
        s = json.dumps(item, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        s = "{…}"
    return s if len(s) <= 200 else s[:200] + "…"
