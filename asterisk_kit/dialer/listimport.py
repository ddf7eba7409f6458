"""An imported list applied to one campaign, and its per-line report kept for the page.

Every line read ends up in exactly one report line: `added` (a new number), `updated` (already in the
campaign; `detail` says what changed, digit and comment old -> new, or nothing), `merged` (a later
line of the same file had the same number and won), or `rejected` (with its reason). "Replace list"
first removes the campaign's numbers the new list does not hold (counted as `removed`).

Reports are stored (component "dialer_imports") so they survive the page's redirect and can be paged
and downloaded; only the last KEEP reports, none older than KEEP_DAYS, are kept.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from .. import storage
from .importing import Parsed, read_list, read_rows
from .listfiles import XlsxList
from .numbers import NumberRules

KINDS = ("added", "updated", "merged", "rejected")
KEEP, KEEP_DAYS = 20, 7

MIGRATIONS = [
    """CREATE TABLE dialer_imports (
         id INTEGER PRIMARY KEY AUTOINCREMENT, campaign_id INTEGER NOT NULL, created REAL NOT NULL,
         by_user TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '', summary TEXT NOT NULL);
       CREATE TABLE dialer_import_lines (
         import_id INTEGER NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, line INTEGER NOT NULL,
         number TEXT NOT NULL, text TEXT NOT NULL, digit TEXT NOT NULL, comment TEXT NOT NULL,
         detail TEXT NOT NULL, PRIMARY KEY (import_id, kind, seq)) WITHOUT ROWID""",
]

ZIP_MAGIC = b"PK\x03\x04"


def migrate(conn) -> None:
    storage.migrate(conn, "dialer_imports", MIGRATIONS)


def read(data: Union[bytes, str], rules: NumberRules, filename: str = "", max_bytes: int = 20_000_000) -> Parsed:
    """CSV / text / todo.json (importing.read_list) or XLSX (by its zip signature or the .xlsx name).
    Raises ImportProblem or MediaError when the input as a whole cannot be read."""
    if isinstance(data, bytes) and (data.startswith(ZIP_MAGIC) or filename.lower().endswith((".xlsx", ".xlsm"))):
        return read_rows(XlsxList(data, max_bytes=max_bytes, max_rows=max(200_000, max_bytes // 20)), rules)
    return read_list(data, rules)


@dataclass
class Result:
    counts: Dict[str, int] = field(default_factory=dict)      # added, updated, changed, merged, rejected, removed
    # kind -> (line, number, input text, digit, comment, detail: JSON of what changed / the reason, or "")
    lines: Dict[str, List[Tuple[int, str, str, str, str, str]]] = field(default_factory=dict)
    parsed: Optional[Parsed] = None


def apply(conn, parsed: Parsed, campaign_id: int, replace: bool = False) -> Result:
    """Store the entries (one transaction) and classify every line read."""
    now = time.time()
    res = Result(lines={k: [] for k in KINDS}, parsed=parsed)
    with storage.transaction(conn):
        old = {r[0]: (r[1], r[2]) for r in conn.execute(
            "SELECT number, digit, comment FROM dialer_phones WHERE campaign_id = ?", (campaign_id,))}
        removed = 0
        if replace:
            new = {e.number for e in parsed.entries}
            gone = [(campaign_id, n) for n in old if n not in new]
            conn.executemany("DELETE FROM dialer_phones WHERE campaign_id = ? AND number = ?", gone)
            removed = len(gone)
        writes = []
        changed = 0
        for e in parsed.entries:
            no = parsed.line_of.get(e.number, 0)
            was = old.get(e.number)
            if was is None:
                res.lines["added"].append((no, e.number, "", e.digit, e.comment, ""))
                writes.append((campaign_id, e.number, e.digit, e.comment, now, now))
                continue
            diff = {k: [o, n] for k, o, n in (("digit", was[0], e.digit), ("comment", was[1], e.comment)) if o != n}
            res.lines["updated"].append((no, e.number, "", e.digit, e.comment,
                                         json.dumps(diff, ensure_ascii=False) if diff else ""))
            if diff:
                changed += 1
                writes.append((campaign_id, e.number, e.digit, e.comment, now, now))
        conn.executemany("INSERT INTO dialer_phones (campaign_id, number, digit, comment, created, updated) "
                         "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(campaign_id, number) DO UPDATE SET "
                         "digit = excluded.digit, comment = excluded.comment, updated = excluded.updated", writes)
    res.lines["merged"] = [(no, number, "", "", "", json.dumps({"by": later})) for no, number, later in parsed.merged]
    res.lines["rejected"] = [(no, "", line.strip()[:200], "", "", json.dumps({"key": err.key, "why": str(err)},
                                                                                ensure_ascii=False))
                             for no, line, err in parsed.rejected]
    for k in KINDS:
        res.lines[k].sort()
    res.counts = {k: len(v) for k, v in res.lines.items()}
    res.counts.update(changed=changed, removed=removed, read=parsed.read, duplicates=parsed.duplicates)
    return res


def save(conn, res: Result, campaign_id: int, by_user: str, source: str, replace: bool) -> int:
    """Keep the report; prune old ones. Returns its id."""
    migrate(conn)
    p = res.parsed
    summary = dict(res.counts, encoding=p.encoding if p else "", header=bool(p and p.header), replace=replace)
    with storage.transaction(conn):
        rid = conn.execute("INSERT INTO dialer_imports (campaign_id, created, by_user, source, summary) "
                           "VALUES (?, ?, ?, ?, ?)", (campaign_id, time.time(), by_user, source[:200],
                                                      json.dumps(summary))).lastrowid
        for kind in KINDS:
            conn.executemany("INSERT INTO dialer_import_lines (import_id, kind, seq, line, number, text, digit, "
                             "comment, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             ((rid, kind, i, *row) for i, row in enumerate(res.lines[kind])))
        old = [r[0] for r in conn.execute("SELECT id FROM dialer_imports WHERE id <= ? - ? OR created < ?",
                                          (rid, KEEP, time.time() - KEEP_DAYS * 86400))]
        for i in old:
            conn.execute("DELETE FROM dialer_import_lines WHERE import_id = ?", (i,))
            conn.execute("DELETE FROM dialer_imports WHERE id = ?", (i,))
    return rid


def report(conn, rid: int) -> Optional[Dict[str, Any]]:
    migrate(conn)
    row = conn.execute("SELECT * FROM dialer_imports WHERE id = ?", (rid,)).fetchone()
    if row is None:
        return None
    return {"id": row["id"], "campaign_id": row["campaign_id"], "created": row["created"], "by_user": row["by_user"],
            "source": row["source"], **json.loads(row["summary"])}


def lines(conn, rid: int, kind: str, offset: int = 0, limit: int = 20) -> List[Dict[str, Any]]:
    """A page of one kind's lines, by the primary key (flat at any report size)."""
    rows = conn.execute("SELECT line, number, text, digit, comment, detail FROM dialer_import_lines "
                        "WHERE import_id = ? AND kind = ? AND seq >= ? ORDER BY seq LIMIT ?",
                        (rid, kind, int(offset), int(limit))).fetchall()
    return [_line(r) for r in rows]


def _line(r) -> Dict[str, Any]:
    return {"line": r[0], "number": r[1], "text": r[2], "digit": r[3], "comment": r[4],
            "detail": json.loads(r[5]) if r[5] else {}}


def describe(kind: str, line: Dict[str, Any]) -> str:
    """One report line's detail in plain English (CLI, CSV download)."""
    d = line["detail"]
    if kind == "added":
        return "; ".join(f"{k} {line[k]!r}" for k in ("digit", "comment") if line[k])
    if kind == "updated":
        ch = [f"{k}: {d[k][0]!r} -> {d[k][1]!r}" for k in ("digit", "comment") if k in d]
        return "; ".join(ch) or "no change"
    if kind == "merged":
        return f"same number as line {d['by']}, which wins"
    return d.get("why", "")


def csv_lines(conn, rid: int) -> Iterator[str]:
    """The whole report as CSV lines (UTF-8 with BOM so Excel opens it in Russian)."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";")

    def flush() -> str:
        s = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return s
    w.writerow(["line", "result", "number", "input", "detail"])
    yield "\ufeff" + flush()
    for kind in KINDS:
        for r in conn.execute("SELECT line, number, text, digit, comment, detail FROM dialer_import_lines "
                              "WHERE import_id = ? AND kind = ? ORDER BY seq", (rid, kind)):
            w.writerow([r[0], kind, r[1], r[2], describe(kind, _line(r))])
            if buf.tell() > 65536:
                yield flush()
    yield flush()
