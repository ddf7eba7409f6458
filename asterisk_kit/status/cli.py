"""`asterisk-kit status` (the overview) and `asterisk-kit alerts check` (cron: mail incidents)."""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("status", help="each capability's last successful run, last error, backlogs, BLF link, TLS")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
    a = sub.add_parser("alerts", help="e-mail alerts ([alerts])")
    s = a.add_subparsers(dest="alerts_command", metavar="ACTION")
    s.required = True
    c = s.add_parser("check", help="cron, every 5 minutes: mail new incidents and recoveries, once each")
    c.set_defaults(func=cmd_check)
    t = s.add_parser("test", help="send a test mail to [alerts] mail_to")
    t.set_defaults(func=cmd_test)


def cmd_status(ctx) -> int:
    """Exit 0 when nothing needs attention, 1 when something does (usable by a monitoring check)."""
    from .overview import collect, text
    o = collect(ctx.cfg)
    if ctx.args.json:
        print(json.dumps({k: v for k, v in o.items()}, default=str, ensure_ascii=False, indent=1))
    else:
        sys.stdout.write(text(o))
    return 1 if o["problems"] else 0


def _need_alerts(ctx) -> bool:
    if not ctx.cfg.has("alerts"):
        print(f"asterisk-kit: no [alerts] section in {ctx.cfg.path}: alerts are off", file=sys.stderr)
        return False
    return True


def cmd_check(ctx) -> int:
    if not _need_alerts(ctx):
        return 2
    from .alerts import AlertError, check
    log = ctx.logger("alerts")
    with ctx.lock("alerts"):
        try:
            for subject in check(ctx.cfg):
                log.info("sent: %s", subject)
        except AlertError as e:
            log.error("could not send an alert: %s", e)
            print(f"asterisk-kit: could not send an alert: {e}", file=sys.stderr)
            return 1
    return 0


def cmd_test(ctx) -> int:
    if not _need_alerts(ctx):
        return 2
    from .alerts import AlertError, send_mail
    try:
        send_mail(ctx.cfg, "test mail", "A test of [alerts] from `asterisk-kit alerts test`.")
    except AlertError as e:
        print(f"asterisk-kit: {e}", file=sys.stderr)
        return 1
    print(f"test mail sent to {', '.join(ctx.cfg['alerts']['mail_to'])}")
    return 0
