"""Tests whose expectations are computed from "today" must not straddle midnight (the kit would
compute another day than the test did a moment earlier)."""
from __future__ import annotations

import datetime as dt
import time
from typing import Optional


def away_from_midnight(tz: Optional[str] = None, margin: float = 180.0) -> None:
    """Return at once, or sleep past the next midnight of TZ (local when None) when it is nearer
    than MARGIN seconds."""
    if tz:
        from zoneinfo import ZoneInfo
        now = dt.datetime.now(ZoneInfo(tz))
    else:
        now = dt.datetime.now().astimezone()
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    left = (midnight - now).total_seconds()
    if left < margin:
        time.sleep(left + 2)
