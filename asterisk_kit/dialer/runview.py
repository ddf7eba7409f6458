"""What the run and results pages read: a run's counts, one page of its numbers, its rows for the
exports, and outcomes per run and per day of a campaign. Read-only; the runner writes the rows.

A run of 200 000 numbers is never read whole for a page: counts are one aggregate, the table is one
page (by the `dialer_calls_seq` index on (run_id, seq), kept in its own migration component so the
store's own migration list stays the store's), and the exports stream a cursor.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Iterator, List, Optional

from .. import storage

MIGRATIONS = ["CREATE INDEX IF NOT EXISTS dialer_calls_seq ON dialer_calls (run_id, seq)"]

PAGE_SIZE = 50
# Bar segments in order; together they partition a run's numbers.
SEGMENTS = ("answered", "unanswered", "calling", "waiting")

_COUNTS = ("count(*), "
           "sum(c.state IN ('done', 'withdrawn') AND c.result = 'answered'), "
           "sum(c.state IN ('done', 'withdrawn') AND coalesce(c.result, '') != 'answered'), "
           "sum(c.state = 'spooled'), sum(c.state = 'pending'), sum(c.attempts > 0), sum(c.optout)")
_COUNT_KEYS = ("total", *SEGMENTS, "handed", "optout")

_ROW = ("SELECT c.number, c.state, c.result, c.attempts, c.spooled, c.finished, c.pressed, c.optout, c.note, "
        "c.seq, coalesce(p.comment, '') AS comment FROM dialer_calls c "
        "LEFT JOIN dialer_phones p ON p.campaign_id = ? AND p.number = c.number ")


def prepare(conn) -> None:
    """The page index; after the store's own migrations."""
    storage.migrate(conn, "dialer_runview", MIGRATIONS)


def counts(conn, run_id: int) -> Dict[str, int]:
    row = conn.execute(f"SELECT {_COUNTS} FROM dialer_calls c WHERE c.run_id = ?", (run_id,)).fetchone()
    return {k: int(v or 0) for k, v in zip(_COUNT_KEYS, row, strict=True)}


def unanswered(conn, run_id: int) -> int:
    """Numbers "call the unanswered again" would call (store.create_run(only_unanswered_of=...))."""
    return conn.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ? AND coalesce(result, '') != 'answered' "
                        "AND optout = 0", (run_id,)).fetchone()[0]


def outcome(state: str, result: Optional[str]) -> str:
    """One key per row: its final result, `spooled` while Asterisk has its call, `pending` while it
    waits (for its first attempt or a retry)."""
    if state in ("done", "withdrawn"):
        return result or "failed"
    return "spooled" if state == "spooled" else "pending"


def _like(search: str) -> str:
    return "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _filter(search: str):
    s = (search or "").strip()
    if not s:
        return "", ()
    return " AND (c.number LIKE ? ESCAPE '\\' OR p.comment LIKE ? ESCAPE '\\')", (_like(s), _like(s))


def count(conn, run, search: str = "") -> int:
    where, args = _filter(search)
    if not where:
        return conn.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ?", (run["id"],)).fetchone()[0]
    return conn.execute("SELECT count(*) FROM dialer_calls c LEFT JOIN dialer_phones p "
                        "ON p.campaign_id = ? AND p.number = c.number WHERE c.run_id = ?" + where,
                        (run["campaign_id"], run["id"], *args)).fetchone()[0]


def page(conn, run, search: str = "", offset: int = 0, limit: int = PAGE_SIZE) -> List[Dict[str, Any]]:
    where, args = _filter(search)
    rows = conn.execute(_ROW + "WHERE c.run_id = ?" + where + " ORDER BY c.seq LIMIT ? OFFSET ?",
                        (run["campaign_id"], run["id"], *args, int(limit), int(offset))).fetchall()
    return [dict(r) for r in rows]


def export_rows(conn, run) -> Iterator[Dict[str, Any]]:
    """Every number of the run in list order, as export.py takes them. The store keeps the start of a
    number's last attempt only, so `first_call` is known for numbers called once (it is that call)."""
    cur = conn.execute(_ROW + "WHERE c.run_id = ? ORDER BY c.seq", (run["campaign_id"], run["id"]))
    for r in cur:
        yield {"number": r["number"], "comment": r["comment"], "attempts": r["attempts"],
               "first_call": r["spooled"] if r["attempts"] == 1 else None, "last_call": r["spooled"],
               "outcome": outcome(r["state"], r["result"]), "digit": r["pressed"] or "",
               "opted_out": bool(r["optout"])}


def per_run(conn, campaign_id: int, limit: int = 100) -> List[Dict[str, Any]]:
    """The campaign's runs, newest first, with their counts."""
    rows = conn.execute(
        f"SELECT r.id, r.trigger, r.day, r.created, r.started, r.finished, r.status, r.by_user, r.note, {_COUNTS} "
        "FROM dialer_runs r LEFT JOIN dialer_calls c ON c.run_id = r.id WHERE r.campaign_id = ? "
        "GROUP BY r.id ORDER BY r.id DESC LIMIT ?", (campaign_id, limit)).fetchall()
    out = []
    for r in rows:
        d = {k: r[k] for k in ("id", "trigger", "day", "created", "started", "finished", "status", "by_user", "note")}
        d.update({k: int(v or 0) for k, v in zip(_COUNT_KEYS, tuple(r)[9:], strict=True)})
        out.append(d)
    return out


def per_day(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The same counts summed per run day (the day a run was started for), oldest first."""
    days: Dict[str, Dict[str, Any]] = {}
    for r in runs:
        d = days.setdefault(r["day"], {"day": r["day"], "runs": 0, **{k: 0 for k in _COUNT_KEYS}})
        d["runs"] += 1
        for k in _COUNT_KEYS:
            d[k] += r[k]
    return [days[k] for k in sorted(days)]


def clock(ts: Optional[float], tz, day: Optional[str] = None) -> str:
    """A time as staff read it in the PBX's zone: HH:MM:SS, with the date when it is not DAY."""
    if not ts:
        return ""
    t = dt.datetime.fromtimestamp(float(ts), tz)
    return t.strftime("%H:%M:%S") if day and t.date().isoformat() == day else t.strftime("%Y-%m-%d %H:%M:%S")


def bar(c: Dict[str, int], width: int = 1000) -> List[Dict[str, Any]]:
    """SVG rectangles (x, width) of the segments of counts C, over WIDTH units."""
    total = sum(c.get(k, 0) for k in SEGMENTS)
    x, out = 0.0, []
    for k in SEGMENTS:
        w = width * c.get(k, 0) / total if total else 0.0
        out.append({"key": k, "x": round(x, 2), "w": round(w, 2)})
        x += w
    return out
