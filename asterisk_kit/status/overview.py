"""What `asterisk-kit status` and /status show, gathered from the store, memcached and the config.

One dict (`collect`) feeds the terminal, the page and the alert rules, so the three never disagree.
Each part is read on its own: a part that cannot be read says why and the others still show.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from .. import jobruns

ROWS = ("dialer", "beeline", "comagic", "nimbox", "blf", "web")


def age(seconds: Optional[float]) -> str:
    if seconds is None:
        return "never"
    s = int(max(0, seconds))
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 2 * 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


def _when(t: Optional[float]) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _jobs(cfg, conn, now: float) -> Dict[str, dict]:
    out = {}
    for job, section in jobruns.RECORDED.items():
        configured = bool(cfg.instances(section)) if section == "beeline" else cfg.has(section)
        if not configured:
            continue
        s = jobruns.summary(conn, job)
        ok, err = s["last_ok"], s["last_error"]
        s["last_ok_at"] = _when(ok["ended"]) if ok else "never"
        s["last_ok_age"] = age(now - ok["ended"]) if ok else "never"
        s["failing"] = s["failed_in_a_row"] > 0
        s["error_text"] = err["error"] if err else ""
        s["error_at"] = _when(err["ended"] or err["started"]) if err else ""
        out[section] = s
    return out


def _nimbox(cfg, now: float) -> dict:
    from ..nimbox import outbox
    conn = outbox.connect(cfg)
    row = conn.execute("SELECT count(*), min(created) FROM nimbox_calls WHERE state = ?", (outbox.PENDING,)).fetchone()
    conn.close()
    return {"outbox": row[0], "oldest": age(now - row[1]) if row[1] else ""}


def _beeline(cfg) -> dict:
    from ..beeline import sync
    conn = sync.open_store(cfg)
    rows = sync.skipped(conn)
    conn.close()
    per: Dict[str, int] = {}
    for r in rows:
        per[r["customer"]] = per.get(r["customer"], 0) + 1
    return {"skipped": len(rows), "skipped_by_customer": per}


def _comagic(cfg) -> dict:
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
    from ..comagic.destinations import LOADS_TABLE, local_path
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


def blf_link(cfg, now: float) -> dict:
    """The BLF daemon's AMI link as its heartbeat in memcached tells it.
    state: up | ami-down | stopped | no-daemon | no-memcached; down_since: when known."""
    from ..blf.cache import read_state
    from ..memcache import client_from_config
    try:
        mc = client_from_config(cfg, ignore_exc=False)
        try:
            meta = read_state(mc)["meta"]
        finally:
            mc.close()
    except Exception as e:
        return {"state": "no-memcached", "text": f"memcached unreachable ({type(e).__name__}: {e})",
                "down_since": None}
    stale = cfg["blf"]["stale_seconds"]
    if not meta:
        return {"state": "no-daemon", "text": "no heartbeat in memcached: the daemon is not running",
                "down_since": None}
    beat = float(meta.get("heartbeat", 0))
    if meta.get("ami") == "stopped" or now - beat > stale:
        what = "stopped" if meta.get("ami") == "stopped" else "no-daemon"
        return {"state": what, "text": f"daemon {'stopped' if what == 'stopped' else 'not running'}, "
                                       f"last heartbeat {age(now - beat)}", "down_since": beat}
    if meta.get("ami") != "up":
        since = meta.get("ami_since")
        when = age(now - since) if since else "?"
        return {"state": "ami-down", "text": f"daemon running, AMI link down since {when}",
                "down_since": float(since) if since else None}
    since = meta.get("ami_since")
    return {"state": "up", "text": f"AMI link up since {age(now - since) if since else '?'}, "
                                   f"{meta.get('extensions', 0)} extensions", "down_since": None}


def web_tls(cfg) -> dict:
    cert = cfg.get("web", "tls_cert")
    if cert:
        return {"tls": True, "text": f"HTTPS with {cert}"}
    if cfg.get("web", "secure_cookies"):
        return {"tls": False, "text": "plain HTTP here, HTTPS expected from a reverse proxy (secure_cookies = yes)"}
    return {"tls": False, "text": "plain HTTP (no [web] tls_cert): keep it on 127.0.0.1 or behind an HTTPS proxy"}


def collect(cfg, now: Optional[float] = None) -> Dict[str, Any]:
    """{rows: [{name, ok, lines: [...]}], jobs, nimbox, beeline, comagic, blf, web, problems: [...]}."""
    now = time.time() if now is None else now
    out: Dict[str, Any] = {"generated": _when(now), "problems": [],
                           "outbox_limit": cfg.get("alerts", "outbox_backlog", 0)}
    conn = jobruns.connect(cfg)
    try:
        out["jobs"] = _jobs(cfg, conn, now)
    finally:
        conn.close()
    parts = {"nimbox": (cfg.has("nimbox"), lambda: _nimbox(cfg, now)),
             "beeline": (bool(cfg.instances("beeline")), lambda: _beeline(cfg)),
             "comagic": (cfg.has("comagic"), lambda: _comagic(cfg)),
             "blf": (cfg.has("blf"), lambda: blf_link(cfg, now)),
             "web": (True, lambda: web_tls(cfg))}
    for name, (configured, read) in parts.items():
        if not configured:
            continue
        try:
            out[name] = read()
        except Exception as e:
            out[name] = {"error": f"{type(e).__name__}: {e}"}
    out["rows"] = _rows(out)
    out["problems"] = [f"{r['name']}: {p}" for r in out["rows"] for p in r["problems"]]
    return out


def _rows(o: Dict[str, Any]) -> List[dict]:
    rows = []
    for name in ROWS:
        lines: List[str] = []
        problems: List[str] = []
        job = o["jobs"].get(name)
        if job is not None:
            lines.append("last successful run: " + (f"{job['last_ok_at']} ({job['last_ok_age']})" if job["last_ok"]
                                                    else "never"))
            if job["running"]:
                lines.append(f"running now (pid {job['running']['pid']})")
            if job["failing"]:
                problems.append(f"failed {job['failed_in_a_row']} run(s) in a row, last error at {job['error_at']}: "
                                f"{job['error_text']}")
            elif job["error_text"]:
                lines.append(f"last error ({job['error_at']}): {job['error_text']}")
        part = o.get(name)
        if name not in o["jobs"] and part is None:
            continue
        if part and "error" in part:
            problems.append(f"cannot read: {part['error']}")
        elif name == "nimbox" and part:
            limit = o.get("outbox_limit") or 0
            if limit and part["outbox"] > limit:
                problems.append(f"outbox backlog {part['outbox']} > {limit} ([alerts] outbox_backlog)")
            lines.append(f"outbox: {part['outbox']} call(s) waiting" + (f", oldest {part['oldest']}" if part["oldest"]
                                                                         else ""))
        elif name == "beeline" and part:
            by = ", ".join(f"{k}: {v}" for k, v in sorted(part["skipped_by_customer"].items()))
            lines.append(f"skipped records: {part['skipped']}" + (f" ({by}; `asterisk-kit beeline skipped`)"
                                                                  if by else ""))
        elif name == "comagic" and part:
            lines.append(f"last loaded day: {part['last_day']}")
        elif name == "blf" and part:
            (lines if part["state"] == "up" else problems).append(part["text"])
        elif name == "web" and part:
            lines.append(part["text"])
        rows.append({"name": name, "ok": not problems, "lines": lines, "problems": problems})
    return rows


def text(o: Dict[str, Any]) -> str:
    out = [f"asterisk-kit status at {o['generated']}"]
    for r in o["rows"]:
        out.append(f"{r['name']:<8} {'ok' if r['ok'] else 'PROBLEM'}")
        for p in r["problems"]:
            out.append(f"  ! {p}")
        for line in r["lines"]:
            out.append(f"  {line}")
    return "\n".join(out) + "\n"
