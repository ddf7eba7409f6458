"""The BLF part of `asterisk-kit status` and of the alerts: the daemon's AMI link, from its heartbeat."""
from __future__ import annotations

from ..status.overview import age


def link(cfg, now: float) -> dict:
    """The BLF daemon's AMI link as its heartbeat in memcached tells it.
    state: up | ami-down | stopped | no-daemon | no-memcached; down_since: when known."""
    from ..memcache import client_from_config
    from .cache import read_state
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


def part(cfg, now: float) -> dict:
    out = link(cfg, now)
    out["lines" if out["state"] == "up" else "problems"] = [out["text"]]
    return out
