"""The kit's own store: one SQLite file in [general] data_dir.

Each component (web users and sessions, dialer, NiMbox outbox, job state) owns its tables and
declares them as a numbered list of migrations; `migrate()` applies the missing ones in a
transaction. WAL mode lets the web app, cron jobs and AGI calls use the file at the same time;
`synchronous=FULL` because the outbox and job cursors promise durability once committed.
"""
from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

DB_NAME = "asterisk-kit.sqlite"
DB_MODE = 0o640


def db_path(cfg) -> Path:
    return Path(cfg.data_dir) / DB_NAME


def connect(cfg=None, path: Optional[Path] = None, timeout: float = 30.0) -> sqlite3.Connection:
    path = Path(path) if path else db_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Password hashes and phone lists: 0640 whatever the umask; SQLite gives -wal/-shm the same mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, DB_MODE))
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error (the connection is in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, component: str, migrations: Sequence[str]) -> None:
    """Apply migrations[n:] for COMPONENT where n is its recorded version."""
    row = conn.execute("SELECT version FROM schema_version WHERE component = ?", (component,)).fetchone()
    have = row[0] if row else 0
    if have >= len(migrations):
        return
    with transaction(conn):
        row = conn.execute("SELECT version FROM schema_version WHERE component = ?", (component,)).fetchone()
        have = row[0] if row else 0
        for sql in migrations[have:]:
            for stmt in _split(sql):
                conn.execute(stmt)
        conn.execute("INSERT INTO schema_version (component, version) VALUES (?, ?) "
                     "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                     (component, len(migrations)))


def _split(sql: str):
    """The statements of a migration: split at `;`, rejoining pieces until SQLite calls the statement
    complete (a trigger's body holds `;` up to its END). No semicolons inside string literals."""
    out, acc = [], ""
    for piece in sql.split(";"):
        acc += piece + ";"
        if sqlite3.complete_statement(acc):
            if acc.strip(" \t\r\n;"):
                out.append(acc.strip())
            acc = ""
    if acc.strip(" \t\r\n;"):
        out.append(acc.strip())
    return out


# ---- small key/value state for jobs (cursors, last loaded day) ---------------------------------

_STATE_MIGRATIONS = [
    """CREATE TABLE job_state (
         job TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated REAL NOT NULL,
         PRIMARY KEY (job, key))""",
]


def state_get(conn: sqlite3.Connection, job: str, key: str, default: Optional[str] = None) -> Optional[str]:
    migrate(conn, "job_state", _STATE_MIGRATIONS)
    row = conn.execute("SELECT value FROM job_state WHERE job = ? AND key = ?", (job, key)).fetchone()
    return row[0] if row else default


def state_set(conn: sqlite3.Connection, job: str, key: str, value: str) -> None:
    """Durable once it returns (own transaction unless the caller holds one)."""
    migrate(conn, "job_state", _STATE_MIGRATIONS)
    sql = ("INSERT INTO job_state (job, key, value, updated) VALUES (?, ?, ?, ?) "
           "ON CONFLICT(job, key) DO UPDATE SET value = excluded.value, updated = excluded.updated")
    if conn.in_transaction:
        conn.execute(sql, (job, key, value, time.time()))
    else:
        with transaction(conn):
            conn.execute(sql, (job, key, value, time.time()))


def chown_to(path: Path, user: str) -> None:
    """Give PATH to USER when running as root (files Asterisk must read or remove)."""
    if os.geteuid() != 0 or not user:
        return
    import pwd
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return
    os.chown(path, pw.pw_uid, pw.pw_gid)
