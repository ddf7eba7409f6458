"""The NiMbox part of `asterisk-kit status`: the outbox backlog (and the alert threshold)."""
from __future__ import annotations

from ..status.overview import age


def part(cfg, now: float) -> dict:
    from . import outbox
    conn = outbox.connect(cfg)
    try:
        row = conn.execute("SELECT count(*), min(created) FROM nimbox_calls WHERE state = ?",
                           (outbox.PENDING,)).fetchone()
    finally:
        conn.close()
    waiting, oldest = row[0], (age(now - row[1]) if row[1] else "")
    limit = cfg.get("alerts", "outbox_backlog", 0) if cfg.has("alerts") else 0
    problems = [f"outbox backlog {waiting} > {limit} ([alerts] outbox_backlog)"] if limit and waiting > limit else []
    return {"outbox": waiting, "oldest": oldest, "problems": problems,
            "lines": [f"outbox: {waiting} call(s) waiting" + (f", oldest {oldest}" if oldest else "")]}
