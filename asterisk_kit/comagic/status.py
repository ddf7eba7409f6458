"""The CoMagic part of `asterisk-kit status`: the last day the export completed."""
from __future__ import annotations


def _last_day(cfg) -> dict:
    """The last day the export completed, read where the export records it."""
    c = cfg["comagic"]
    if c["destination"] == "bigquery":
        from .. import storage
        conn = storage.connect(cfg)
        try:
            row = conn.execute("SELECT max(day) FROM comagic_bigquery_loads").fetchone()
        except Exception:
            row = (None,)
        conn.close()
        return {"last_day": row[0] or "none yet"}
    from .destinations import LOADS_TABLE, local_path
    path = local_path(cfg)
    if not path.exists():
        return {"last_day": "none yet"}
    import duckdb
    try:
        con = duckdb.connect(str(path), read_only=True)
    except Exception as e:      # the export holds the file right now
        return {"last_day": f"unknown ({type(e).__name__}: the export may be writing the file)"}
    try:
        row = con.execute(f"SELECT max(day) FROM {LOADS_TABLE}").fetchone()
    except Exception:
        row = (None,)
    finally:
        con.close()
    return {"last_day": str(row[0]) if row and row[0] else "none yet"}


def part(cfg, now: float) -> dict:
    out = _last_day(cfg)
    out["lines"] = [f"last loaded day: {out['last_day']}"]
    return out
