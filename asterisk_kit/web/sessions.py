"""Server-side sessions: the cookie holds only a random id; user, CSRF token and times live in SQLite.

Only a login creates a session (a new id every time, so no fixation); anonymous visitors get none,
so page loads cannot fill the table. The login form is protected by a double-submit token instead
(`login_token`). A session ends after `ttl` seconds unused or `max_age` seconds after the login,
whichever comes first; expired rows are pruned at every login.
"""
from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from typing import Optional

from .. import storage

MIGRATIONS = [
    """CREATE TABLE web_sessions (
         id_hash TEXT PRIMARY KEY, user TEXT, csrf TEXT NOT NULL, created REAL NOT NULL, seen REAL NOT NULL);
       CREATE INDEX web_sessions_user ON web_sessions (user)""",
    # Anonymous (pre-login) sessions are gone: drop the ones older versions left behind.
    "DELETE FROM web_sessions WHERE user IS NULL",
]

TOUCH_EVERY = 60.0          # write `seen` at most this often


def init(conn: sqlite3.Connection) -> None:
    storage.migrate(conn, "web_sessions", MIGRATIONS)


def _h(sid: str) -> str:
    # Stored hashed: a copy of the database does not hand out live session cookies.
    return hashlib.sha256(sid.encode("ascii", "replace")).hexdigest()


class Session:
    def __init__(self, sid: str, user: str, csrf: str):
        self.sid, self.user, self.csrf = sid, user, csrf


def new_token() -> str:
    return secrets.token_urlsafe(24)


def create(conn: sqlite3.Connection, user: str) -> Session:
    init(conn)
    sid, csrf, now = secrets.token_urlsafe(32), new_token(), time.time()
    conn.execute("INSERT INTO web_sessions (id_hash, user, csrf, created, seen) VALUES (?, ?, ?, ?, ?)",
                 (_h(sid), user, csrf, now, now))
    return Session(sid, user, csrf)


def load(conn: sqlite3.Connection, sid: Optional[str], ttl: float, max_age: float) -> Optional[Session]:
    if not sid or len(sid) > 100:
        return None
    init(conn)
    row = conn.execute("SELECT user, csrf, created, seen FROM web_sessions WHERE id_hash = ?", (_h(sid),)).fetchone()
    if row is None:
        return None
    now = time.time()
    if row["user"] is None or now - row["seen"] > ttl or now - row["created"] > max_age:
        conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", (_h(sid),))
        return None
    if now - row["seen"] > TOUCH_EVERY:
        conn.execute("UPDATE web_sessions SET seen = ? WHERE id_hash = ?", (now, _h(sid)))
    return Session(sid, row["user"], row["csrf"])


def drop(conn: sqlite3.Connection, sid: str) -> None:
    init(conn)
    conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", (_h(sid),))


def drop_user(conn: sqlite3.Connection, user: str) -> None:
    init(conn)
    conn.execute("DELETE FROM web_sessions WHERE user = ?", (user,))


def prune(conn: sqlite3.Connection, ttl: float, max_age: float) -> int:
    init(conn)
    now = time.time()
    return conn.execute("DELETE FROM web_sessions WHERE user IS NULL OR seen < ? OR created < ?",
                        (now - ttl, now - max_age)).rowcount
