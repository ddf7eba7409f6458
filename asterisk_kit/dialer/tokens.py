"""API tokens of the autodialer's JSON API: per web user, scoped to one campaign or all, revocable.

A token is 32 random bytes (`akd_` + URL-safe base64). Only its SHA-256 is stored: the token is
high-entropy, so a plain hash cannot be reversed, and a copy of the store hands out no working token.
The owner sees it once, at creation; afterwards only its first characters (`prefix`) identify it.
A token stops working when revoked, past its expiry, or when its user is deleted.
"""
from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .. import storage

MIGRATIONS = [
    """CREATE TABLE dialer_api_tokens (
         id INTEGER PRIMARY KEY AUTOINCREMENT, hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
         name TEXT NOT NULL, user TEXT NOT NULL, campaign_id INTEGER, created REAL NOT NULL,
         expires REAL, last_used REAL, revoked REAL);
       CREATE INDEX dialer_api_tokens_user ON dialer_api_tokens (user)""",
]

SCHEME = "akd_"
PREFIX_LEN = len(SCHEME) + 8
MAX_NAME = 80
TOUCH_EVERY = 5.0            # write last_used at most this often per token


@dataclass(frozen=True)
class Token:
    id: int
    prefix: str
    name: str
    user: str
    campaign_id: Optional[int]      # None: every campaign

    def allows(self, campaign_id: int) -> bool:
        return self.campaign_id is None or self.campaign_id == campaign_id


def init(conn: sqlite3.Connection) -> None:
    storage.migrate(conn, "dialer_tokens", MIGRATIONS)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def create(conn: sqlite3.Connection, user: str, name: str, campaign_id: Optional[int] = None,
           expires: Optional[float] = None) -> Tuple[int, str]:
    """(id, the token itself); the caller shows it once and keeps it nowhere."""
    init(conn)
    secret = SCHEME + secrets.token_urlsafe(32)
    with storage.transaction(conn):
        cur = conn.execute("INSERT INTO dialer_api_tokens (hash, prefix, name, user, campaign_id, created, expires) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (digest(secret), secret[:PREFIX_LEN], name, user, campaign_id, time.time(), expires))
    return int(cur.lastrowid or 0), secret


def lookup(conn: sqlite3.Connection, secret: str, now: Optional[float] = None) -> Optional[Token]:
    """The live token for SECRET (not revoked, not expired, its user still exists), else None."""
    init(conn)
    if not secret.startswith(SCHEME) or len(secret) > 100:
        return None
    now = time.time() if now is None else now
    row = conn.execute("SELECT t.* FROM dialer_api_tokens t JOIN web_users u ON u.name = t.user "
                       "WHERE t.hash = ? AND t.revoked IS NULL AND (t.expires IS NULL OR t.expires > ?)",
                       (digest(secret), now)).fetchone()
    if row is None:
        return None
    return Token(row["id"], row["prefix"], row["name"], row["user"], row["campaign_id"])


def touch(conn: sqlite3.Connection, token_id: int, now: Optional[float] = None) -> None:
    now = time.time() if now is None else now
    conn.execute("UPDATE dialer_api_tokens SET last_used = ? WHERE id = ? AND coalesce(last_used, 0) < ?",
                 (now, token_id, now - TOUCH_EVERY))


def listing(conn: sqlite3.Connection, user: Optional[str] = None) -> List[sqlite3.Row]:
    """USER's tokens (None: everyone's), newest first, with the campaign's name."""
    init(conn)
    sql = ("SELECT t.id, t.prefix, t.name, t.user, t.campaign_id, t.created, t.expires, t.last_used, t.revoked, "
           "c.name AS campaign FROM dialer_api_tokens t LEFT JOIN dialer_campaigns c ON c.id = t.campaign_id")
    if user is None:
        return conn.execute(sql + " ORDER BY t.id DESC").fetchall()
    return conn.execute(sql + " WHERE t.user = ? ORDER BY t.id DESC", (user,)).fetchall()


def get(conn: sqlite3.Connection, token_id: int) -> Optional[sqlite3.Row]:
    init(conn)
    return conn.execute("SELECT * FROM dialer_api_tokens WHERE id = ?", (token_id,)).fetchone()


def revoke(conn: sqlite3.Connection, token_id: int) -> bool:
    """True when it was live until now (a second revoke changes nothing)."""
    init(conn)
    with storage.transaction(conn):
        return conn.execute("UPDATE dialer_api_tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                            (time.time(), token_id)).rowcount > 0
