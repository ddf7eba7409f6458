"""`asterisk-kit nimbox …`: sync (cron: incremental hourly, full nightly), status, delete."""
from __future__ import annotations

import argparse
import datetime as dt
import sys


def register(sub) -> None:
    p = sub.add_parser("nimbox", help="NiMbox CRM push: outbox and CDR replicator")
    ns = p.add_subparsers(dest="nimbox_command", metavar="ACTION")
    ns.required = True
    a = ns.add_parser("sync", help="send the outbox, then every qualifying CDR call of the last "
                                   "[nimbox] incremental_hours (or full_days with --full)")
    a.add_argument("--full", action="store_true", help="the last [nimbox] full_days instead of incremental_hours")
    a.add_argument("--since", metavar="WHEN", type=_when,
                   help="start of the window instead: YYYY-MM-DD or 'YYYY-MM-DD HH:MM' (PBX local time)")
    a.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="debug logging, also to stderr")
    a.set_defaults(func=cmd_sync)
    a = ns.add_parser("status", help="calls in the outbox and what the kit knows was sent")
    a.set_defaults(func=cmd_status)
    a = ns.add_parser("delete",
                      help="delete the calls of a range of days in NiMbox (and let the next sync resend them)")
    a.add_argument("--from", dest="first", metavar="YYYY-MM-DD", type=dt.date.fromisoformat, required=True,
                   help="first day deleted (inclusive)")
    a.add_argument("--to", dest="last", metavar="YYYY-MM-DD", type=dt.date.fromisoformat, required=True,
                   help="last day deleted (inclusive)")
    a.add_argument("--yes", action="store_true", required=True, help="confirm (required)")
    a.set_defaults(func=cmd_delete)


def _when(v: str) -> dt.datetime:
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(v.strip(), fmt)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{v!r}: expected YYYY-MM-DD or 'YYYY-MM-DD HH:MM'")


def _need(ctx) -> int:
    cfg = ctx.cfg
    if not cfg.has("nimbox"):
        print(f"asterisk-kit: {cfg.path}: no [nimbox] section", file=sys.stderr)
        return 2
    return 0


def cmd_sync(ctx) -> int:
    if _need(ctx):
        return 2
    from . import outbox
    from .sync import Sync
    log = ctx.logger("nimbox")
    with ctx.lock("nimbox-sync"):
        tty = sys.stderr.isatty()
        progress = (lambda s: print("\r" + s[:150].ljust(150), end="", file=sys.stderr, flush=True)) if tty else None
        mode = "since " + str(ctx.args.since) if ctx.args.since else ("full" if ctx.args.full else "incremental")
        log.info("sync (%s) started", mode)
        conn = outbox.connect(ctx.cfg)
        try:
            if not ctx.cfg.has("mysql"):
                log.warning("no [mysql] section: only the outbox is sent, the CDR table is not read")
            s = Sync(ctx.cfg, conn, log, progress).run(full=ctx.args.full, since=ctx.args.since,
                                                       read_cdr=ctx.cfg.has("mysql"))
        except Exception as e:
            if tty:
                print(file=sys.stderr)
            log.exception("sync failed: %s", e)
            print(f"asterisk-kit: nimbox sync failed: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        if tty:
            print(file=sys.stderr)
        log.info("sync (%s) done: %s", mode, s.line())
        print(s.line())
        if s.auth_failed:
            print("asterisk-kit: NiMbox refused the token: check [nimbox] token; nothing was lost", file=sys.stderr)
        elif s.gave_up:
            print(f"asterisk-kit: NiMbox kept failing ({'; '.join(s.errors[:2])}): stopped early; nothing was lost, "
                  f"the next run goes on", file=sys.stderr)
        elif s.failed:
            print(f"asterisk-kit: {s.failed} call(s) could not be sent ({'; '.join(s.errors[:2])}); "
                  f"they stay in the outbox", file=sys.stderr)
        return 1 if s.failed else 0


def cmd_status(ctx) -> int:
    if _need(ctx):
        return 2
    from . import outbox
    conn = outbox.connect(ctx.cfg)
    c = outbox.counts(conn)
    print(f"outbox (pending): {c.get('pending', 0)}; created {c.get('created', 0)}, already there "
          f"{c.get('exists', 0)}, rejected {c.get('rejected', 0)}")
    for call in outbox.pending(conn, limit=20):
        print(f"  pending: {call.initiated} {call.source} -> {call.destination}")
    return 0


def cmd_delete(ctx) -> int:
    if _need(ctx):
        return 2
    from . import outbox
    from .client import NimboxClient, NimboxError
    a = ctx.args
    if a.last < a.first:
        print("asterisk-kit: --to is before --from", file=sys.stderr)
        return 1
    log = ctx.logger("nimbox")
    first, last = a.first.isoformat(), a.last.isoformat()
    with ctx.lock("nimbox-sync"):
        # Forget first, delete second: killed in between, the next sync sends those days again and
        # NiMbox answers "exists" (a few wasted requests); the other order would leave the kit sure
        # NiMbox has calls it deleted, never to be sent again. Forgotten once more after the delete:
        # a hook may have recorded a call of those days while the delete ran.
        conn = outbox.connect(ctx.cfg)
        try:
            forgotten = outbox.forget_days(conn, first, last)
            cl = NimboxClient.from_config(ctx.cfg)
            try:
                count = cl.delete(a.first, a.last)
            except NimboxError as e:
                log.error("delete of %s..%s failed: %s (%d call(s) forgotten locally: the next sync sends them "
                          "again, NiMbox answers those it has as already there)", first, last, e, forgotten)
                print(f"asterisk-kit: {e}", file=sys.stderr)
                return 1
            finally:
                cl.close()
            forgotten += outbox.forget_days(conn, first, last)
        finally:
            conn.close()
        log.info("deleted %d call(s) of %s..%s in NiMbox; %d forgotten locally", count, first, last, forgotten)
        print(f"deleted {count} call(s) in NiMbox; the next sync of those days sends them again")
    return 0
