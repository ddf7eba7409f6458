"""Server-side sessions: the cookie holds only a random id; user, CSRF token and expiry live in SQLite.

Anonymous visitors get a session too (on the login page), so the login form carries a CSRF token;
logging in replaces the session id (no fixation).
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
]

ANON_TTL = 3600.0           # an anonymous session only has to outlive filling in the login form
TOUCH_EVERY = 60.0          # write `seen` at most this often


def init(conn: sqlite3.Connection) -> None:
    storage.migrate(conn, "web_sessions", MIGRATIONS)


def _h(sid: str) -> str:
    # Stored hashed: a copy of the database does not hand out live session cookies.
    return hashlib.sha256(sid.encode("ascii", "replace")).hexdigest()


class Session:
    def __init__(self, sid: str, user: Optional[str], csrf: str):
        self.sid, self.user, self.csrf = sid, user, csrf


def create(conn: sqlite3.Connection, user: Optional[str] = None) -> Session:
    init(conn)
    sid, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(24), time.time()
    conn.execute("INSERT INTO web_sessions (id_hash, user, csrf, created, seen) VALUES (?, ?, ?, ?, ?)",
                 (_h(sid), user, csrf, now, now))
    return Session(sid, user, csrf)


def load(conn: sqlite3.Connection, sid: Optional[str], ttl: float) -> Optional[Session]:
    if not sid or len(sid) > 100:
        return None
    init(conn)
    row = conn.execute("SELECT user, csrf, seen FROM web_sessions WHERE id_hash = ?", (_h(sid),)).fetchone()
    if row is None:
        return None
    now = time.time()
    if now - row["seen"] > (ttl if row["user"] else ANON_TTL):
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


def prune(conn: sqlite3.Connection, ttl: float) -> None:
    init(conn)
    now = time.time()
    conn.execute("DELETE FROM web_sessions WHERE (user IS NULL AND seen < ?) OR seen < ?", (now - ANON_TTL, now - ttl))
