"""The NiMbox tables in the kit's SQLite store: one row per call the kit has tried to send.

A row is keyed like NiMbox keys its calls, (initiated, source, destination):
  pending              the outbox: not yet confirmed by NiMbox (the hook could not reach it, or a
                       sync failed for it); the next sync sends it first
  created / exists     NiMbox has it: a sync skips it (no request at all)
  rejected             NiMbox refused it for good (e.g. unknown destination): not retried
The hook writes `pending` and COMMITS before it sends, then records the outcome, so a call is never
lost between the two, whatever kills the process (nimbox/hook.py).
"""
from __future__ import annotations

import sqlite3
import time
from typing import Iterable, Iterator, List, Optional, Tuple

from .. import storage
from .call import Call

MIGRATIONS = [
    """CREATE TABLE nimbox_calls (
         initiated TEXT NOT NULL, source TEXT NOT NULL, destination TEXT NOT NULL,
         duration INTEGER NOT NULL, url TEXT NOT NULL DEFAULT '', linkedid TEXT NOT NULL DEFAULT '',
         calldate TEXT NOT NULL, origin TEXT NOT NULL, state TEXT NOT NULL,
         attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',
         created REAL NOT NULL, updated REAL NOT NULL,
         PRIMARY KEY (initiated, source, destination));
       CREATE INDEX nimbox_calls_pending ON nimbox_calls (state, calldate);
       CREATE INDEX nimbox_calls_linkedid ON nimbox_calls (linkedid);
       CREATE INDEX nimbox_calls_calldate ON nimbox_calls (calldate)""",
]

PENDING = "pending"
DONE_STATES = ("created", "exists", "rejected")


def connect(cfg, timeout: float = 30.0) -> sqlite3.Connection:
    """The store; TIMEOUT bounds SQLite's wait for another writer (the hook passes what is left of
    its hook_timeout)."""
    conn = storage.connect(cfg, timeout=timeout)
    storage.migrate(conn, "nimbox", MIGRATIONS)
    return conn


def add_pending(conn, call: Call, origin: str) -> bool:
    """Write-ahead: the call is in the outbox once this returns. False when the kit already holds
    this call (pending or done): the caller then has nothing to add."""
    now = time.time()
    with storage.transaction(conn):
        cur = conn.execute(
            "INSERT OR IGNORE INTO nimbox_calls (initiated, source, destination, duration, url, linkedid, calldate, "
            "origin, state, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*call.key, call.duration, call.url, call.linkedid, call.calldate, origin, PENDING, now, now))
        return cur.rowcount == 1


def state_of(conn, call: Call) -> Optional[str]:
    row = conn.execute("SELECT state FROM nimbox_calls WHERE initiated = ? AND source = ? AND destination = ?",
                       call.key).fetchone()
    if row is None and call.linkedid:
        # The same call seen through another CDR row (another key) by the hook: do not send it twice.
        row = conn.execute("SELECT state FROM nimbox_calls WHERE linkedid = ? AND state != ? LIMIT 1",
                           (call.linkedid, PENDING)).fetchone()
    return row[0] if row else None


def record(conn, results: Iterable[Tuple[Call, str, str]], origin: str) -> None:
    """Store outcomes (call, state, detail) in one transaction: done states end the call's life in
    the outbox; `pending` keeps (or puts) it there with the error and one more attempt counted."""
    now = time.time()
    with storage.transaction(conn):
        for call, state, detail in results:
            conn.execute(
                "INSERT INTO nimbox_calls (initiated, source, destination, duration, url, linkedid, calldate, origin, "
                "state, attempts, last_error, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?) "
                "ON CONFLICT (initiated, source, destination) DO UPDATE SET state = excluded.state, "
                "attempts = nimbox_calls.attempts + 1, last_error = excluded.last_error, updated = excluded.updated",
                (*call.key, call.duration, call.url, call.linkedid, call.calldate, origin, state,
                 detail[:500] if state != "created" else "", now, now))


def pending(conn, limit: Optional[int] = None) -> List[Call]:
    sql = ("SELECT initiated, source, destination, duration, url, linkedid, calldate FROM nimbox_calls "
           "WHERE state = ? ORDER BY calldate")
    rows = conn.execute(sql + (f" LIMIT {int(limit)}" if limit else ""), (PENDING,)).fetchall()
    return [Call(*tuple(r)) for r in rows]


def iter_pending(conn, page: int = 1000) -> Iterator[Call]:
    """The outbox in pages (rowid order), so a large outbox never sits in memory whole and the
    caller may write to the store between pages."""
    last = 0
    while True:
        rows = conn.execute("SELECT rowid, initiated, source, destination, duration, url, linkedid, calldate "
                            "FROM nimbox_calls WHERE state = ? AND rowid > ? ORDER BY rowid LIMIT ?",
                            (PENDING, last, page)).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        for r in rows:
            yield Call(*tuple(r)[1:])


def counts(conn) -> dict:
    return dict(conn.execute("SELECT state, count(*) FROM nimbox_calls GROUP BY state").fetchall())


def forget_days(conn, first_day: str, last_day: str) -> int:
    """After a delete in NiMbox: drop what the kit knows of those days (YYYY-MM-DD inclusive), so
    the next sync sends them again. Pending calls stay."""
    with storage.transaction(conn):
        cur = conn.execute("DELETE FROM nimbox_calls WHERE state != ? AND calldate >= ? AND calldate < ?",
                           (PENDING, first_day, last_day + "T99"))
        return cur.rowcount


def prune(conn, before_calldate: str) -> int:
    """Done rows older than the longest sync window are of no more use."""
    with storage.transaction(conn):
        return conn.execute("DELETE FROM nimbox_calls WHERE state != ? AND calldate < ?",
                            (PENDING, before_calldate)).rowcount
