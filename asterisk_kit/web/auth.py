"""Web accounts: scrypt password hashes and login throttling, kept in the kit's SQLite store.

There is no default account: `asterisk-kit user add NAME` creates the first one.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from typing import List, Optional

from .. import storage

MIGRATIONS = [
    """CREATE TABLE web_users (
         name TEXT PRIMARY KEY, password TEXT NOT NULL, created REAL NOT NULL, changed REAL NOT NULL);
       CREATE TABLE web_login_failures (
         key TEXT PRIMARY KEY, failures INTEGER NOT NULL, last REAL NOT NULL, locked_until REAL NOT NULL)""",
]

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 8
# scrypt cost: ~50 ms and 16 MiB per check on a small PBX; stored with the hash so it can grow.
_N, _R, _P = 2 ** 14, 8, 1


class UserError(ValueError):
    """A user-facing problem with an account command (bad name, short password, no such user)."""


def init(conn: sqlite3.Connection) -> None:
    from . import sessions
    storage.migrate(conn, "web_auth", MIGRATIONS)
    sessions.init(conn)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, maxmem=64 * 1024 * 1024, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${_N}${_R}${_P}${b64(salt)}${b64(dk)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, dk = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(dk)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=64 * 1024 * 1024, dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


# A hash to check against when the user does not exist, so timing does not reveal valid names.
_DUMMY = None


def _dummy_hash() -> str:
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password(secrets.token_hex(8))
    return _DUMMY


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UserError(f"invalid user name {name!r}: 1-64 characters, letters, digits and . _ @ - "
                        "(starting with a letter or digit)")
    return name


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password too short: at least {MIN_PASSWORD} characters")
    if password != password.strip() or "\n" in password or "\r" in password:
        raise UserError("password must not start or end with spaces or contain line breaks")
    return password


def add_user(conn: sqlite3.Connection, name: str, password: str) -> None:
    init(conn)
    check_name(name)
    check_new_password(password)
    now = time.time()
    with storage.transaction(conn):
        if conn.execute("SELECT 1 FROM web_users WHERE name = ?", (name,)).fetchone():
            raise UserError(f"user {name!r} already exists (use `user passwd {name}` to change the password)")
        conn.execute("INSERT INTO web_users (name, password, created, changed) VALUES (?, ?, ?, ?)",
                     (name, hash_password(password), now, now))


def set_password(conn: sqlite3.Connection, name: str, password: str) -> None:
    init(conn)
    check_new_password(password)
    with storage.transaction(conn):
        cur = conn.execute("UPDATE web_users SET password = ?, changed = ? WHERE name = ?",
                           (hash_password(password), time.time(), name))
        if cur.rowcount == 0:
            raise UserError(f"no such user {name!r}")
        # A new password ends every open session of that user.
        from . import sessions
        sessions.drop_user(conn, name)


def delete_user(conn: sqlite3.Connection, name: str) -> None:
    init(conn)
    with storage.transaction(conn):
        if conn.execute("DELETE FROM web_users WHERE name = ?", (name,)).rowcount == 0:
            raise UserError(f"no such user {name!r}")
        from . import sessions
        sessions.drop_user(conn, name)


def list_users(conn: sqlite3.Connection) -> List[sqlite3.Row]:
    init(conn)
    return conn.execute("SELECT name, created, changed FROM web_users ORDER BY name").fetchall()


def authenticate(conn: sqlite3.Connection, name: str, password: str) -> bool:
    init(conn)
    row = conn.execute("SELECT password FROM web_users WHERE name = ?", (name,)).fetchone()
    ok = verify_password(password, row[0] if row else _dummy_hash())
    return bool(row) and ok


# ---- throttling: per user name and per client address --------------------------------------------

def locked_for(conn: sqlite3.Connection, keys: List[str], now: Optional[float] = None) -> float:
    """Seconds until a login may be tried again for any of KEYS (0: not locked)."""
    init(conn)
    now = time.time() if now is None else now
    wait = 0.0
    for key in keys:
        row = conn.execute("SELECT locked_until FROM web_login_failures WHERE key = ?", (key,)).fetchone()
        if row and row[0] > now:
            wait = max(wait, row[0] - now)
    return wait


def record_failure(conn: sqlite3.Connection, keys: List[str], max_failures: int, lockout: float) -> None:
    now = time.time()
    with storage.transaction(conn):
        for key in keys:
            row = conn.execute("SELECT failures, last FROM web_login_failures WHERE key = ?", (key,)).fetchone()
            # Failures older than one lockout period are forgiven.
            failures = (row[0] if row and now - row[1] < lockout else 0) + 1
            locked_until = now + lockout if failures >= max_failures else 0
            if locked_until:
                failures = 0
            conn.execute("INSERT INTO web_login_failures (key, failures, last, locked_until) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET failures = excluded.failures, last = excluded.last, "
                         "locked_until = excluded.locked_until", (key, failures, now, locked_until))


def clear_failures(conn: sqlite3.Connection, keys: List[str]) -> None:
    with storage.transaction(conn):
        for key in keys:
            conn.execute("DELETE FROM web_login_failures WHERE key = ?", (key,))
