"""The Beeline part of `asterisk-kit status`: records skipped after their attempts, per customer."""
from __future__ import annotations

from typing import Dict


def part(cfg, now: float) -> dict:
    from . import sync
    conn = sync.open_store(cfg)
    try:
        rows = sync.skipped(conn)
    finally:
        conn.close()
    per: Dict[str, int] = {}
    for r in rows:
        per[r["customer"]] = per.get(r["customer"], 0) + 1
    by = ", ".join(f"{k}: {v}" for k, v in sorted(per.items()))
    return {"skipped": len(rows), "skipped_by_customer": per,
            "lines": [f"skipped records: {len(rows)}" + (f" ({by}; `asterisk-kit beeline skipped`)" if by else "")]}
