"""Import and export in the shapes of the previous PHP tool's files (shapes documented in docs/dialer.md).

todo.json:     [{"number": "89161234567", "dtmf": "1", "comment": "Ivanov"}, ...]
               (also accepted: a list of plain number strings; "dtmf" may be absent or ""; read by
               importing.py)
schedule.json: {"mon": "09:00", "tue": "off", ..., "sun": "off"}   (missing days: off)
"""
from __future__ import annotations

import json
from typing import Dict, Optional

from .schedule import WEEKDAYS


class ImportError_(ValueError):
    pass


def export_todo(rows) -> str:
    return json.dumps([{"number": r["number"], "dtmf": r["digit"], "comment": r["comment"]} for r in rows],
                      ensure_ascii=False, indent=1)


def parse_time(value: Optional[str]) -> Optional[str]:
    """'HH:MM' (also 'H:MM') or off/empty -> canonical 'HH:MM' or None."""
    import re
    s = (value or "").strip().lower()
    if s in ("", "off", "-", "выкл"):
        return None
    m = re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", s)
    if not m:
        raise ValueError(f"{value!r}: expected a time HH:MM or off")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def parse_schedule(data) -> Dict[int, Optional[str]]:
    if not isinstance(data, dict):
        raise ImportError_('schedule.json: expected an object like {"mon": "09:00", "tue": "off"}')
    unknown = set(data) - set(WEEKDAYS)
    if unknown:
        raise ImportError_(f"schedule.json: unknown day(s) {', '.join(sorted(unknown))} (use {', '.join(WEEKDAYS)})")
    out = {}
    for i, day in enumerate(WEEKDAYS):
        try:
            out[i] = parse_time(data.get(day) if isinstance(data.get(day), str) or data.get(day) is None
                                else str(data.get(day)))
        except ValueError as e:
            raise ImportError_(f"schedule.json: {day}: {e}") from None
    return out


def export_schedule(sched: Dict[int, Optional[str]]) -> str:
    return json.dumps({WEEKDAYS[i]: (sched[i] or "off") for i in range(7)}, indent=1)
