"""The panel's audit log and per-user rate limit, one table in the kit's store.

Every action a user asks for gets a row (who, what, target, when, from where, result) BEFORE anything
is sent to Asterisk, in the same IMMEDIATE transaction that counts the user's recent attempts, so a
burst of concurrent requests cannot slip past the limit together. The row is then finished with the
outcome; a process killed in between leaves it `pending`, never a silent action.
"""
from __future__ import annotations

import sqlite3
import time
from typing import List, Optional, Tuple

from .. import storage

MIGRATIONS = [
    """CREATE TABLE panel_audit (
         id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, user TEXT NOT NULL, action TEXT NOT NULL,
         target TEXT NOT NULL, address TEXT NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');
       CREATE INDEX panel_audit_user_at ON panel_audit (user, at)""",
]

WINDOW = 60.0
RATE_LIMITED = "rate-limited"


def init(conn: sqlite3.Connection) -> None:
    storage.migrate(conn, "panel_audit", MIGRATIONS)


def begin(conn: sqlite3.Connection, user: str, action: str, target: str, address: str, per_minute: int,
          now: Optional[float] = None) -> Tuple[int, bool]:
    """Record an attempt; (row id, allowed). Not allowed: the user already made PER_MINUTE attempts in the
    last minute (refused ones count; earlier rate-limited ones do not, so waiting a minute always helps)."""
    init(conn)
    now = time.time() if now is None else now
    with storage.transaction(conn):
        n = conn.execute("SELECT COUNT(*) FROM panel_audit WHERE user = ? AND at > ? AND result != ?",
                         (user, now - WINDOW, RATE_LIMITED)).fetchone()[0]
        allowed = n < per_minute
        cur = conn.execute("INSERT INTO panel_audit (at, user, action, target, address, result) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (now, user, action[:20], target[:40], address[:64], "pending" if allowed else RATE_LIMITED))
    return int(cur.lastrowid or 0), allowed


def finish(conn: sqlite3.Connection, row: int, result: str, detail: str = "") -> None:
    with storage.transaction(conn):
        conn.execute("UPDATE panel_audit SET result = ?, detail = ? WHERE id = ?", (result, detail[:300], row))


def recent(conn: sqlite3.Connection, limit: int = 100, user: Optional[str] = None) -> List[sqlite3.Row]:
    init(conn)
    if user:
        return conn.execute("SELECT * FROM panel_audit WHERE user = ? ORDER BY id DESC LIMIT ?",
                            (user, limit)).fetchall()
    return conn.execute("SELECT * FROM panel_audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
