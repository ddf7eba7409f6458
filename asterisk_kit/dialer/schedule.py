"""The weekly schedule: is a run due now? (`dialer tick`, from cron every minute)."""
from __future__ import annotations

import datetime as dt
import time
from typing import Optional

from .. import storage
from . import store

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def tz(cfg):
    name = cfg["general"]["timezone"]
    if name == "local":
        return dt.datetime.now().astimezone().tzinfo
    from zoneinfo import ZoneInfo
    return ZoneInfo(name)


def tz_name(cfg) -> str:
    name = cfg["general"]["timezone"]
    if name != "local":
        return name
    try:
        import os
        link = os.readlink("/etc/localtime")
        return link.split("zoneinfo/", 1)[1]
    except (OSError, IndexError):
        return time.strftime("%Z")


def now(cfg) -> dt.datetime:
    return dt.datetime.now(tz(cfg))


def due(cfg, conn, at: dt.datetime) -> Optional[str]:
    """Today's date (YYYY-MM-DD) when today's scheduled run should start at AT, else None.

    A run whose start was missed by more than [dialer] grace_minutes (PBX or cron down) is recorded
    as `missed` instead of being started late."""
    start = store.schedule(conn)[at.weekday()]
    if not start:
        return None
    day = at.date().isoformat()
    hh, mm = map(int, start.split(":"))
    start_at = at.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if at < start_at:
        return None
    if conn.execute("SELECT 1 FROM dialer_runs WHERE trigger = 'schedule' AND day = ?", (day,)).fetchone():
        return None
    if at - start_at > dt.timedelta(minutes=cfg["dialer"]["grace_minutes"]):
        with storage.transaction(conn):
            conn.execute("INSERT OR IGNORE INTO dialer_runs (trigger, day, created, finished, status, note) "
                         "VALUES ('schedule', ?, ?, ?, 'missed', ?)",
                         (day, time.time(), time.time(), f"start {start} missed by more than the grace window"))
        return None
    return day
