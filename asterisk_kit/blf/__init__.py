"""BLF panel: one AMI connection -> extension states in memcached -> a live page (/blf).

daemon.py (asyncio, amiconn.py) keeps board.py's model; cache.py writes it to memcached; web.py
serves the page, the JSON and the Server-Sent Events from memcached, never from AMI."""
from __future__ import annotations

import time

from ..capability import Capability

CAPABILITY = Capability(
    name="blf",
    summary="BLF panel: one AMI connection -> extension states in memcached -> a live page (/blf).",
    settings="asterisk_kit.blf.settings",
    commands="asterisk_kit.blf.cli",
    pages="asterisk_kit.blf.web:register",
    doctor="asterisk_kit.blf:doctor_checks",
    status="asterisk_kit.blf.status:part",
    dialplan=("panel.conf.j2",),        # click-to-dial's first leg (panel actions)
    services=("asterisk-kit-blf",),
    ami=True,
)


def doctor_checks(cfg):
    """memcached reachable, the daemon's heartbeat fresh and its AMI link up, hints found."""
    from ..memcache import client_from_config
    from .cache import read_state, stale_reason
    try:
        mc = client_from_config(cfg, ignore_exc=False)
        st = read_state(mc)
        mc.close()
    except Exception as e:
        yield "blf cache", False, f"memcached: {type(e).__name__}: {e}"
        return
    meta = st["meta"]
    why = stale_reason(meta, cfg["blf"]["stale_seconds"])
    if why in ("nodaemon", "stopped"):
        if why == "stopped":    # a clean stop (init.d stop, SIGTERM) marks the cache: say so
            age = f"stopped {time.time() - meta['heartbeat']:.0f} s ago"
        else:
            age = f"last heartbeat {time.time() - meta['heartbeat']:.0f} s ago" if meta else "no heartbeat in memcached"
        yield "blf daemon", False, f"not running ({age}); start /etc/init.d/asterisk-kit-blf"
        return
    if why:
        yield "blf daemon", False, f"running but AMI is {meta.get('ami')}: states are stale"
        return
    n = meta.get("extensions", 0)
    contexts = ", ".join(cfg["blf"]["contexts"])
    yield "blf daemon", n > 0, (f"running, AMI up, {n} extensions" if n else
                                f"running, AMI up, but no hint matches [blf] contexts {contexts}")
