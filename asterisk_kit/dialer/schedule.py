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


def _at(day: dt.datetime, hhmm: str) -> dt.datetime:
    hh, mm = map(int, hhmm.split(":"))
    return day.replace(hour=hh, minute=mm, second=0, microsecond=0)


def window_open(windows, at: dt.datetime) -> bool:
    """Is AT inside the day's calling window (start <= AT < end; no end: until midnight)?"""
    w = windows[at.weekday()]
    if not w:
        return False
    start, end = w
    return _at(at, start) <= at and (end is None or at < _at(at, end))


def next_window(windows, at: dt.datetime) -> Optional[dt.datetime]:
    """When the next window opens after AT (for "next run: Tue 10:00"), within a week."""
    for i in range(8):
        day = at + dt.timedelta(days=i)
        w = windows[day.weekday()]
        if w and _at(day, w[0]) > at:
            return _at(day, w[0])
    return None


def due(cfg, conn, at: dt.datetime, campaign_id: int = 1) -> Optional[str]:
    """Today's date (YYYY-MM-DD) when the campaign's scheduled run of today should start at AT, else None.

    Inside the day's window [start, end) the run starts once. A window without an end (a list from
    before campaigns) keeps the old rule: a start missed by more than [dialer] grace_minutes (PBX or
    cron down) is recorded as `missed` instead of being started late; so is a window that closed."""
    w = store.windows(conn, campaign_id)[at.weekday()]
    if not w:
        return None
    start, end = w
    day = at.date().isoformat()
    start_at = _at(at, start)
    if at < start_at:
        return None
    if conn.execute("SELECT 1 FROM dialer_runs WHERE trigger = 'schedule' AND day = ? AND campaign_id = ?",
                    (day, campaign_id)).fetchone():
        return None
    late = (at >= _at(at, end)) if end else (at - start_at > dt.timedelta(minutes=cfg["dialer"]["grace_minutes"]))
    if late:
        with storage.transaction(conn):
            conn.execute("INSERT OR IGNORE INTO dialer_runs (trigger, day, created, finished, status, note, "
                         "campaign_id) "
                         "VALUES ('schedule', ?, ?, ?, 'missed', ?, ?)",
                         (day, time.time(), time.time(),
                          f"start {start} missed by more than the grace window" if not end
                          else f"window {start}-{end} missed", campaign_id))
        return None
    return day
