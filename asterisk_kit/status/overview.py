"""What `asterisk-kit status` and /status show, gathered from the store, memcached and the config.

One dict (`collect`) feeds the terminal, the page and the alert rules, so the three never disagree.
Each part is read on its own: a part that cannot be read says why and the others still show.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

from .. import jobruns


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
    for job, section in jobruns.recorded().items():
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


def web_tls(cfg, now: Optional[float] = None) -> dict:
    cert = cfg.get("web", "tls_cert")
    if cert:
        return {"tls": True, "lines": [f"HTTPS with {cert}"]}
    if cfg.get("web", "secure_cookies"):
        return {"tls": False, "lines": ["plain HTTP here, HTTPS expected from a reverse proxy (secure_cookies = yes)"]}
    return {"tls": False, "lines": ["plain HTTP (no [web] tls_cert): keep it on 127.0.0.1 or behind an HTTPS proxy"]}


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
    from ..capabilities import configured, resolve

    def reader(target: str) -> Callable[[], Any]:
        return lambda: resolve(target)(cfg, now)
    parts = {cap.name: reader(cap.status) for cap in configured(cfg) if cap.status}
    parts["web"] = lambda: web_tls(cfg)
    out["parts"] = list(parts)
    for name, read in parts.items():
        try:
            out[name] = read()
        except Exception as e:
            out[name] = {"error": f"{type(e).__name__}: {e}"}
    out["rows"] = _rows(out)
    out["problems"] = [f"{r['name']}: {p}" for r in out["rows"] for p in r["problems"]]
    return out


def _rows(o: Dict[str, Any]) -> List[dict]:
    """One row per capability with a recorded job or a status part (in the order they were read), then web.
    A part gives its own `lines` and `problems`."""
    rows = []
    names = list(o["jobs"]) + [n for n in o if n in o["parts"] and n not in o["jobs"]]
    for name in dict.fromkeys(names):
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
        part = o.get(name) or {}
        if "error" in part:
            problems.append(f"cannot read: {part['error']}")
        lines += part.get("lines", [])
        problems += part.get("problems", [])
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
