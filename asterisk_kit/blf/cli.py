"""`asterisk-kit blf run` (the daemon, foreground) and `asterisk-kit blf show` (what memcached holds)."""
from __future__ import annotations

import time


def register(sub) -> None:
    p = sub.add_parser("blf", help="BLF panel: the AMI -> memcached daemon and a look at its states")
    bs = p.add_subparsers(dest="blf_command", metavar="ACTION")
    bs.required = True
    r = bs.add_parser("run", help="run the daemon in the foreground (init.d / systemd start this)")
    r.set_defaults(func=cmd_run)
    s = bs.add_parser("show", help="print the extension states found in memcached")
    s.add_argument("--json", action="store_true", help="print the raw snapshot JSON")
    s.set_defaults(func=cmd_show)


def cmd_run(ctx) -> int:
    from ..config import load
    from .daemon import run
    cfg = ctx.cfg
    cfg["blf"]              # a config error shows before anything starts
    log = ctx.logger("blf")
    # one daemon per config: a second one (init.d and a foreground run) exits 75 instead of doubling
    # the AMI connections
    with ctx.lock("blf"):
        log.info("BLF daemon starting (config %s)", cfg.path)
        return run(cfg, log, reload_config=lambda: load(ctx.args.config))


def cmd_show(ctx) -> int:
    import json

    from ..memcache import client_from_config
    from .cache import read_state, stale_reason
    mc = client_from_config(ctx.cfg, ignore_exc=False)
    try:
        st = read_state(mc)
    except Exception as e:
        print(f"asterisk-kit: memcached: {type(e).__name__}: {e}")
        return 1
    if ctx.args.json:
        print(json.dumps(st, ensure_ascii=False, indent=1))
        return 0
    why = stale_reason(st["meta"], ctx.cfg["blf"]["stale_seconds"])
    print(f"version {st['version'].decode() if st['version'] else '-'}; "
          f"{'live' if not why else 'STALE (' + why + ')'}")
    now = time.time()
    for x in (st["snapshot"] or {}).get("extensions", []):
        print(f"{x['exten']:>8}  {x['state']:<14} {int(now - x['since']):>6}s  {x['group']:<12} {x['name']}")
    return 0 if not why else 1
