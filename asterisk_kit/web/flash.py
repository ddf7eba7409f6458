"""One-shot messages carried across a redirect (post/redirect/get): a form's errors, the typed input
and a notice survive the 303 to the page that shows them, and are gone after that page is shown once.

Kept server-side per session (the cookie holds only the session id); rows older than an hour are
pruned on every write, so an abandoned form cannot fill the table.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from typing import Any, Dict, Optional

from .. import storage

MIGRATIONS = [
    """CREATE TABLE web_flash (
         id_hash TEXT NOT NULL, path TEXT NOT NULL, data TEXT NOT NULL, created REAL NOT NULL,
         PRIMARY KEY (id_hash, path))""",
]
KEEP_SECONDS = 3600.0


def _h(sid: str) -> str:
    return hashlib.sha256(("flash:" + sid).encode("ascii", "replace")).hexdigest()


def put(conn: sqlite3.Connection, sid: str, path: str, data: Dict[str, Any]) -> None:
    storage.migrate(conn, "web_flash", MIGRATIONS)
    now = time.time()
    conn.execute("DELETE FROM web_flash WHERE created < ?", (now - KEEP_SECONDS,))
    conn.execute("INSERT OR REPLACE INTO web_flash (id_hash, path, data, created) VALUES (?, ?, ?, ?)",
                 (_h(sid), path, json.dumps(data, ensure_ascii=False), now))


def take(conn: sqlite3.Connection, sid: str, path: str) -> Optional[Dict[str, Any]]:
    storage.migrate(conn, "web_flash", MIGRATIONS)
    key = (_h(sid), path)
    row = conn.execute("SELECT data FROM web_flash WHERE id_hash = ? AND path = ?", key).fetchone()
    if row is None:
        return None
    conn.execute("DELETE FROM web_flash WHERE id_hash = ? AND path = ?", key)
    return json.loads(row[0])
