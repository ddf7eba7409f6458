"""The autodialer's tables in the kit's SQLite store: phones, schedule, runs, calls.

A call row is the promise "this number is dialled once in this run": it is created with the run
(state `pending`), becomes `spooled` only after its call file is in Asterisk's outgoing folder,
and `done` / `withdrawn` when its outcome is known.
"""
from __future__ import annotations

import sqlite3
import time
from typing import Dict, List, Optional

from .. import storage
from .numbers import Entry

MIGRATIONS = [
    """CREATE TABLE dialer_phones (
         number TEXT PRIMARY KEY, digit TEXT NOT NULL DEFAULT '', comment TEXT NOT NULL DEFAULT '',
         created REAL NOT NULL, updated REAL NOT NULL);
       CREATE TABLE dialer_schedule (weekday INTEGER PRIMARY KEY CHECK (weekday BETWEEN 0 AND 6), start TEXT);
       CREATE TABLE dialer_runs (
         id INTEGER PRIMARY KEY AUTOINCREMENT, trigger TEXT NOT NULL, day TEXT NOT NULL,
         created REAL NOT NULL, started REAL, finished REAL,
         status TEXT NOT NULL, by_user TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '');
       CREATE UNIQUE INDEX dialer_runs_scheduled_day ON dialer_runs (day) WHERE trigger = 'schedule';
       CREATE TABLE dialer_calls (
         run_id INTEGER NOT NULL REFERENCES dialer_runs (id), number TEXT NOT NULL, digit TEXT NOT NULL,
         seq INTEGER NOT NULL, state TEXT NOT NULL, batch INTEGER, spooled REAL, finished REAL,
         result TEXT, dialstatus TEXT, answered INTEGER NOT NULL DEFAULT 0, pressed TEXT, file_status TEXT,
         PRIMARY KEY (run_id, number));
       CREATE INDEX dialer_calls_state ON dialer_calls (run_id, state, seq)""",
    # Why a number was not dialled (e.g. a stored row that no longer renders to a call file).
    "ALTER TABLE dialer_calls ADD COLUMN note TEXT NOT NULL DEFAULT ''",
]

# Run states: queued (created, no process yet) -> running -> done | stopped | failed (Asterisk does not
# take the call files; the note says why); `stopping` asks the running process to withdraw what it has
# not handed over.
ACTIVE = ("queued", "running", "stopping")
RESULTS = ("answered", "busy", "no_answer", "failed", "withdrawn")


def connect(cfg) -> sqlite3.Connection:
    conn = storage.connect(cfg)
    storage.migrate(conn, "dialer", MIGRATIONS)
    return conn


# ---- phones ---------------------------------------------------------------------------------------

def phones(conn) -> List[sqlite3.Row]:
    return conn.execute("SELECT number, digit, comment FROM dialer_phones ORDER BY created, number").fetchall()


def upsert_phones(conn, entries: List[Entry]) -> Dict[str, int]:
    """Add or update numbers (a number already listed is updated, never listed twice). One statement for
    the whole list; added = the growth of the table (entries hold each number once)."""
    now = time.time()
    with storage.transaction(conn):
        before = conn.execute("SELECT count(*) FROM dialer_phones").fetchone()[0]
        conn.executemany("INSERT INTO dialer_phones (number, digit, comment, created, updated) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT(number) DO UPDATE SET digit = excluded.digit, comment = excluded.comment, "
                         "updated = excluded.updated", [(e.number, e.digit, e.comment, now, now) for e in entries])
        added = conn.execute("SELECT count(*) FROM dialer_phones").fetchone()[0] - before
    return {"added": added, "updated": len(entries) - added}


def replace_phone(conn, old_number: str, e: Entry) -> None:
    """Edit a row; changing the number onto one already listed merges them."""
    now = time.time()
    with storage.transaction(conn):
        row = conn.execute("SELECT created FROM dialer_phones WHERE number = ?", (old_number,)).fetchone()
        if row is None:
            raise KeyError(old_number)
        conn.execute("DELETE FROM dialer_phones WHERE number = ?", (old_number,))
        conn.execute("INSERT INTO dialer_phones (number, digit, comment, created, updated) VALUES (?, ?, ?, ?, ?) "
                     "ON CONFLICT(number) DO UPDATE SET digit = excluded.digit, comment = excluded.comment, "
                     "updated = excluded.updated", (e.number, e.digit, e.comment, row[0], now))


def delete_phone(conn, number: str) -> bool:
    with storage.transaction(conn):
        return conn.execute("DELETE FROM dialer_phones WHERE number = ?", (number,)).rowcount > 0


# ---- schedule -------------------------------------------------------------------------------------

def schedule(conn) -> Dict[int, Optional[str]]:
    got = {r[0]: r[1] for r in conn.execute("SELECT weekday, start FROM dialer_schedule")}
    return {d: got.get(d) for d in range(7)}


def set_schedule(conn, days: Dict[int, Optional[str]]) -> None:
    with storage.transaction(conn):
        for d, start in days.items():
            conn.execute("INSERT INTO dialer_schedule (weekday, start) VALUES (?, ?) "
                         "ON CONFLICT(weekday) DO UPDATE SET start = excluded.start", (d, start))


# ---- runs -----------------------------------------------------------------------------------------

class RunExists(Exception):
    pass


def create_run(conn, trigger: str, day: str, by_user: str = "") -> int:
    """A run with a call row per listed number, in one transaction (so it has all of them or none).

    One scheduled run per day (unique index): a second tick the same day cannot start another."""
    with storage.transaction(conn):
        active = conn.execute("SELECT id FROM dialer_runs WHERE status IN (%s)" % ",".join("?" * len(ACTIVE)),
                              ACTIVE).fetchone()
        if active:
            raise RunExists(f"run {active[0]} is still active")
        try:
            cur = conn.execute("INSERT INTO dialer_runs (trigger, day, created, status, by_user) "
                               "VALUES (?, ?, ?, 'queued', ?)", (trigger, day, time.time(), by_user))
        except sqlite3.IntegrityError:
            raise RunExists(f"the scheduled run of {day} was already started") from None
        run_id = cur.lastrowid
        conn.execute("INSERT INTO dialer_calls (run_id, number, digit, seq, state) "
                     "SELECT ?, number, digit, row_number() OVER (ORDER BY created, number), 'pending' "
                     "FROM dialer_phones", (run_id,))
    return run_id


def active_run(conn) -> Optional[sqlite3.Row]:
    return conn.execute("SELECT * FROM dialer_runs WHERE status IN (%s) ORDER BY id LIMIT 1"
                        % ",".join("?" * len(ACTIVE)), ACTIVE).fetchone()


def run(conn, run_id: int) -> Optional[sqlite3.Row]:
    return conn.execute("SELECT * FROM dialer_runs WHERE id = ?", (run_id,)).fetchone()


def runs(conn, limit: int = 50) -> List[sqlite3.Row]:
    return conn.execute(
        "SELECT r.*, count(c.number) AS calls, "
        " sum(c.result = 'answered') AS answered, sum(c.result IN ('busy', 'no_answer', 'failed')) AS unanswered, "
        " sum(c.state IN ('pending', 'spooled')) AS open "
        "FROM dialer_runs r LEFT JOIN dialer_calls c ON c.run_id = r.id GROUP BY r.id ORDER BY r.id DESC LIMIT ?",
        (limit,)).fetchall()


def calls(conn, run_id: int) -> List[sqlite3.Row]:
    return conn.execute("SELECT * FROM dialer_calls WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()


def set_run(conn, run_id: int, **fields) -> None:
    cols = ", ".join(f"{k} = ?" for k in fields)
    conn.execute(f"UPDATE dialer_runs SET {cols} WHERE id = ?", (*fields.values(), run_id))


def request_stop(conn, run_id: Optional[int] = None) -> Optional[int]:
    """Ask the active run to stop; a run no process works on is withdrawn here at once."""
    with storage.transaction(conn):
        r = run(conn, run_id) if run_id else active_run(conn)
        if r is None or r["status"] not in ACTIVE:
            return None
        if r["status"] == "queued":
            withdraw_pending(conn, r["id"])
            set_run(conn, r["id"], status="stopped", finished=time.time(), note="stopped before it started")
        else:
            set_run(conn, r["id"], status="stopping")
        return r["id"]


def withdraw_pending(conn, run_id: int) -> int:
    return conn.execute("UPDATE dialer_calls SET state = 'withdrawn', result = 'withdrawn', finished = ? "
                        "WHERE run_id = ? AND state = 'pending'", (time.time(), run_id)).rowcount


def record_event(conn, run_id: int, number: str, dialstatus: Optional[str] = None, answered: bool = False,
                 pressed: Optional[str] = None) -> bool:
    """What the dialplan reports through AGI (DIALSTATUS of the outside leg, answer, digit)."""
    sets, vals = [], []
    if dialstatus is not None:
        sets.append("dialstatus = ?"); vals.append(dialstatus)      # noqa: E702
    if answered:
        sets.append("answered = 1")
    if pressed is not None:
        sets.append("pressed = ?"); vals.append(pressed)            # noqa: E702
    if not sets:
        return False
    with storage.transaction(conn):
        return conn.execute(f"UPDATE dialer_calls SET {', '.join(sets)} WHERE run_id = ? AND number = ?",
                            (*vals, run_id, number)).rowcount > 0
