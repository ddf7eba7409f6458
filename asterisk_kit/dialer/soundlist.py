"""The messages staff can choose for a campaign (the campaign form's "message" and "IVR prompt").

Interface used by the campaign pages: `choices(conn, cfg)` -> [(value, label)], where value is what
the campaign stores in its `sound` / `ivr_prompt` setting (a Playback name, checked by
settings._sound): first the config's defaults, then the messages of the sounds page (uploads and
text-to-speech), labelled with the title staff gave them.

The titles live in their own table `dialer_sounds` (migration component "dialer_sounds"); the audio
is the SoundStore's `<id>.wav`, id being the content hash. A row is written only after its file is
complete, so a listed message always plays.
"""
from __future__ import annotations

import json
import sqlite3
import time
from typing import List, Optional, Tuple

from .. import storage

MIGRATIONS = [
    """CREATE TABLE dialer_sounds (
         id TEXT PRIMARY KEY, title TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('upload', 'tts')),
         seconds REAL NOT NULL, by_user TEXT NOT NULL DEFAULT '', created REAL NOT NULL,
         text TEXT NOT NULL DEFAULT '');
       CREATE INDEX dialer_sounds_title ON dialer_sounds (title)""",
]
TITLE_MAX = 100


def ensure(conn) -> None:
    storage.migrate(conn, "dialer_sounds", MIGRATIONS)


def playback_name(cfg, sound_id: str) -> str:
    from .sounds import SoundStore
    return str(SoundStore.from_config(cfg).path(sound_id).with_suffix(""))


def choices(conn, cfg) -> List[Tuple[str, str]]:
    d = cfg["dialer"]
    out: List[Tuple[str, str]] = []
    for value in (d["sound"], d["ivr_prompt"]):
        if value not in [v for v, _ in out]:
            out.append((value, value))
    ensure(conn)
    from .sounds import SoundStore
    folder = SoundStore.from_config(cfg).folder
    for r in conn.execute("SELECT id, title FROM dialer_sounds ORDER BY title COLLATE NOCASE, created"):
        value = str(folder / r["id"])
        if value not in [v for v, _ in out]:
            out.append((value, r["title"]))
    return out


def all_sounds(conn) -> List[sqlite3.Row]:
    ensure(conn)
    return conn.execute("SELECT * FROM dialer_sounds ORDER BY created DESC, id").fetchall()


def get(conn, sound_id: str) -> Optional[sqlite3.Row]:
    ensure(conn)
    return conn.execute("SELECT * FROM dialer_sounds WHERE id = ?", (sound_id,)).fetchone()


def add(conn, sound_id: str, title: str, kind: str, seconds: float, by_user: str, text: str = "") -> bool:
    """Record a stored sound under a title; False when the same audio is already listed."""
    ensure(conn)
    with storage.transaction(conn):
        return conn.execute("INSERT OR IGNORE INTO dialer_sounds (id, title, kind, seconds, by_user, created, text) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (sound_id, title, kind, seconds, by_user or "", time.time(), text)).rowcount > 0


def rename(conn, sound_id: str, title: str) -> bool:
    ensure(conn)
    with storage.transaction(conn):
        return conn.execute("UPDATE dialer_sounds SET title = ? WHERE id = ?", (title, sound_id)).rowcount > 0


def remove(conn, sound_id: str) -> bool:
    ensure(conn)
    with storage.transaction(conn):
        return conn.execute("DELETE FROM dialer_sounds WHERE id = ?", (sound_id,)).rowcount > 0


def users_of(conn, cfg, name: str) -> List[str]:
    """Who plays the Playback NAME: campaigns (archived ones too: they can be copied or restored),
    runs still in progress (their settings are fixed when they start) and the config's defaults."""
    out: List[str] = []
    for r in conn.execute("SELECT id, name, settings FROM dialer_campaigns ORDER BY id"):
        st = _json(r["settings"])
        if name in (st.get("sound"), st.get("ivr_prompt")):
            out.append(f"campaign:{r['id']}:{r['name']}")
    for r in conn.execute("SELECT id, settings FROM dialer_runs WHERE status IN ('queued', 'running', 'stopping') "
                          "ORDER BY id"):
        st = _json(r["settings"])
        if name in (st.get("sound"), st.get("ivr_prompt")):
            out.append(f"run:{r['id']}")
    d = cfg["dialer"]
    if name in (d["sound"], d["ivr_prompt"]):
        out.append("config")
    return out


def _json(text: Optional[str]) -> dict:
    try:
        v = json.loads(text or "{}")
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}
