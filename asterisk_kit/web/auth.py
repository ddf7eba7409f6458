"""Web accounts: scrypt password hashes and login throttling, kept in the kit's SQLite store.

There is no default account: `asterisk-kit user add NAME` creates the first one. Hashes use OWASP's
scrypt cost (N=2^17, r=8, p=1: ~128 MiB per hash), so only `[web] password_checks` run at once;
older hashes are rewritten at the next successful login.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from typing import List, Optional, Sequence, Tuple

from .. import storage

MIGRATIONS = [
    """CREATE TABLE web_users (
         name TEXT PRIMARY KEY, password TEXT NOT NULL, created REAL NOT NULL, changed REAL NOT NULL);
       CREATE TABLE web_login_failures (
         key TEXT PRIMARY KEY, failures INTEGER NOT NULL, last REAL NOT NULL, locked_until REAL NOT NULL)""",
    # Keys are now user+address and address (no longer user name alone): start afresh.
    "DELETE FROM web_login_failures",
]

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 8
# scrypt cost (OWASP): 128 * N * r bytes = 128 MiB per hash; stored with the hash so it can grow.
_N, _R, _P = 2 ** 17, 8, 1
_MAXMEM = 256 * 1024 * 1024
# How many hashes may run at once (set from [web] password_checks by the web app).
_slots = threading.BoundedSemaphore(2)
SLOT_WAIT = 20.0


class UserBusy(RuntimeError):
    """Too many password checks running; the login is not attempted (try again)."""


def set_parallel_checks(n: int) -> None:
    global _slots
    _slots = threading.BoundedSemaphore(n)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    slots = _slots
    if not slots.acquire(timeout=SLOT_WAIT):
        raise UserBusy("too many password checks at once")
    try:
        return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=dklen)
    finally:
        slots.release()


class UserError(ValueError):
    """A user-facing problem with an account command (bad name, short password, no such user)."""


def init(conn: sqlite3.Connection) -> None:
    from . import perms, sessions
    storage.migrate(conn, "web_auth", MIGRATIONS)
    sessions.init(conn)
    perms.init(conn)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = _scrypt(password, salt, _N, _R, _P, 32)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${_N}${_R}${_P}${b64(salt)}${b64(dk)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, dk = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(dk)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


# A hash to check against when the user does not exist, so timing does not reveal valid names.
_DUMMY: Optional[str] = None
_DUMMY_LOCK = threading.Lock()


def _dummy_hash() -> str:
    global _DUMMY
    with _DUMMY_LOCK:
        if _DUMMY is None:
            _DUMMY = hash_password(secrets.token_hex(8))
    return _DUMMY


def needs_rehash(stored: str) -> bool:
    return not stored.startswith(f"scrypt${_N}${_R}${_P}$")


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
        from . import perms
        perms.on_new_user(conn, name)       # the first account is the admin


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
    """True for the right password; rewrites a hash of an older cost. Raises UserBusy when no check slot
    frees up in time."""
    init(conn)
    row = conn.execute("SELECT password FROM web_users WHERE name = ?", (name,)).fetchone()
    ok = verify_password(password, row[0] if row else _dummy_hash())
    if not (row and ok):
        return False
    if needs_rehash(row[0]):
        # Only if the hash is still the one checked (a concurrent `user passwd` wins).
        conn.execute("UPDATE web_users SET password = ? WHERE name = ? AND password = ?",
                     (hash_password(password), name, row[0]))
    return True


# ---- throttling: per user name + address, and per address -----------------------------------------
#
# Each attempt is charged BEFORE its password is checked, in one IMMEDIATE transaction with the lock
# check, so a burst of concurrent attempts cannot all pass the check before any failure is recorded.
# A right password gives its charge back and forgives that user's typos at that address. A key is
# locked for `lockout` seconds once its charged attempts reach its limit; charges older than `lockout` are forgotten.

Limits = Sequence[Tuple[str, int]]


def throttle_keys(name: str, address: str, per_user: int, per_address: int) -> List[Tuple[str, int]]:
    """User+address keeps one person's typos from locking out the whole office behind one NAT; the
    address alone, with a higher cap, bounds how many guesses one client gets over all names."""
    return [("user:" + name.lower()[:100] + "@" + address, per_user), ("ip:" + address, per_address)]


def begin_attempt(conn: sqlite3.Connection, limits: Limits, lockout: float, now: Optional[float] = None) -> float:
    """Charge one attempt to every key and return 0, or return the seconds to wait (nothing charged)."""
    init(conn)
    now = time.time() if now is None else now
    with storage.transaction(conn):
        wait, rows = 0.0, {}
        for key, _ in limits:
            row = rows[key] = conn.execute("SELECT failures, last, locked_until FROM web_login_failures "
                                           "WHERE key = ?", (key,)).fetchone()
            if row and row["locked_until"] > now:
                wait = max(wait, row["locked_until"] - now)
        if wait:
            return wait
        for key, limit in limits:
            row = rows[key]
            charged = (row["failures"] if row and now - row["last"] < lockout else 0) + 1
            conn.execute("INSERT INTO web_login_failures (key, failures, last, locked_until) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET failures = excluded.failures, last = excluded.last, "
                         "locked_until = excluded.locked_until",
                         (key, charged, now, now + lockout if charged >= limit else 0))
        # Forgotten keys go (a row per address and name tried would otherwise stay forever).
        conn.execute("DELETE FROM web_login_failures WHERE locked_until < ? AND last < ?", (now, now - lockout))
    return 0.0


def refund_attempt(conn: sqlite3.Connection, limits: Limits, succeeded: bool = False) -> None:
    """The attempt was not a wrong password: give its charge back. A right password (SUCCEEDED) also
    forgives the earlier typos of that user at that address (the first key)."""
    with storage.transaction(conn):
        if succeeded:
            conn.execute("DELETE FROM web_login_failures WHERE key = ?", (limits[0][0],))
            limits = limits[1:]
        for key, limit in limits:
            conn.execute("UPDATE web_login_failures SET failures = MAX(failures - 1, 0), "
                         "locked_until = CASE WHEN failures - 1 < ? THEN 0 ELSE locked_until END WHERE key = ?",
                         (limit, key))
