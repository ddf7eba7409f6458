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

MIGRATIONS = ["CREATE INDEX IF NOT EXISTS dialer_calls_seq ON dialer_calls (run_id, seq)",
              "CREATE INDEX IF NOT EXISTS dialer_calls_outcome ON dialer_calls (run_id, state, result, optout)"]

PAGE_SIZE = 50
# Bar segments in order; together they partition a run's numbers.
SEGMENTS = ("answered", "unanswered", "calling", "waiting")

_COUNT_KEYS = ("total", *SEGMENTS, "optout", "again")
# One narrow covering index scan per poll (the grouping below), instead of reading every row.
_GROUPS = "SELECT state, result, optout, count(*) FROM dialer_calls WHERE run_id = ? GROUP BY state, result, optout"

_ROW = ("SELECT c.number, c.state, c.result, c.attempts, c.first_call, c.spooled, c.finished, c.pressed, c.optout, "
        "c.note, c.seq, coalesce(p.comment, '') AS comment FROM dialer_calls c "
        "LEFT JOIN dialer_phones p ON p.campaign_id = ? AND p.number = c.number ")


def prepare(conn) -> None:
    """The page index; after the store's own migrations."""
    storage.migrate(conn, "dialer_runview", MIGRATIONS)


def counts(conn, run_id: int) -> Dict[str, int]:
    """The run's numbers per bar segment, opted out, and `again`: the numbers "call the unanswered
    again" would call (last outcome not answered, not opted out: store.create_run(only_unanswered_of))."""
    return tally(conn.execute(_GROUPS, (run_id,)).fetchall())


def tally(groups) -> Dict[str, int]:
    out = dict.fromkeys(_COUNT_KEYS, 0)
    for state, result, optout, n in groups:
        out["total"] += n
        if state in ("done", "withdrawn"):
            out["answered" if result == "answered" else "unanswered"] += n
        else:
            out["calling" if state == "spooled" else "waiting"] += n
        out["optout"] += n if optout else 0
        out["again"] += n if result != "answered" and not optout else 0
    return out


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
    if not where:
        # The page's first seq from the (run_id, seq) index alone: OFFSET over the joined rows would
        # look up the comment of every row it skips (page 2 000 of 200 000 numbers: 100 000 lookups).
        rows = conn.execute(_ROW + "WHERE c.run_id = ? AND c.seq >= (SELECT seq FROM dialer_calls WHERE run_id = ? "
                            "ORDER BY seq LIMIT 1 OFFSET ?) ORDER BY c.seq LIMIT ?",
                            (run["campaign_id"], run["id"], run["id"], int(offset), int(limit))).fetchall()
    else:
        rows = conn.execute(_ROW + "WHERE c.run_id = ?" + where + " ORDER BY c.seq LIMIT ? OFFSET ?",
                            (run["campaign_id"], run["id"], *args, int(limit), int(offset))).fetchall()
    return [dict(r) for r in rows]


def export_rows(conn, run) -> Iterator[Dict[str, Any]]:
    """Every number of the run in list order, as export.py takes them: `first_call` is the hand-over of
    its first attempt, `last_call` of its latest."""
    cur = conn.execute(_ROW + "WHERE c.run_id = ? ORDER BY c.seq", (run["campaign_id"], run["id"]))
    for r in cur:
        yield {"number": r["number"], "comment": r["comment"], "attempts": r["attempts"],
               "first_call": r["first_call"], "last_call": r["spooled"],
               "outcome": outcome(r["state"], r["result"]), "digit": r["pressed"] or "",
               "opted_out": bool(r["optout"])}


def per_run(conn, campaign_id: int, limit: int = 100) -> List[Dict[str, Any]]:
    """The campaign's last LIMIT runs, newest first, with their counts."""
    runs = [dict(r) for r in conn.execute(
        "SELECT id, trigger, day, created, started, finished, status, by_user, note FROM dialer_runs "
        "WHERE campaign_id = ? ORDER BY id DESC LIMIT ?", (campaign_id, limit))]
    groups: Dict[int, list] = {r["id"]: [] for r in runs}
    if runs:
        for run_id, *g in conn.execute(
                "SELECT run_id, state, result, optout, count(*) FROM dialer_calls WHERE run_id IN (%s) "
                "GROUP BY run_id, state, result, optout" % ",".join("?" * len(runs)), list(groups)):
            groups[run_id].append(g)
    for r in runs:
        r.update(tally(groups[r["id"]]))
    return runs


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
