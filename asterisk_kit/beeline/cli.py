"""`asterisk-kit beeline sync [--customer NAME] [--limit N] [--dry-run]` (cron, every 15 minutes),
`asterisk-kit beeline skipped` (records given up on, and those waiting for a retry) and
`asterisk-kit beeline retry [--customer NAME] (ID... | --all)` (queue skipped records again)."""
from __future__ import annotations

import sys
import time

from ..lock import EXIT_LOCKED, JobLock, LockBusy


def _positive(v: str) -> int:
    import argparse
    if not v.isdigit() or int(v) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {v!r}")
    return int(v)


def register(sub) -> None:
    p = sub.add_parser("beeline", help="Beeline cloud PBX recordings export to FTP / FTPS / SFTP")
    s = p.add_subparsers(dest="beeline_cmd", metavar="ACTION")
    s.required = True
    y = s.add_parser("sync", help="export new recordings (mp3 + JSON) of every [beeline:NAME] customer")
    y.add_argument("--customer", metavar="NAME", help="only this [beeline:NAME] section")
    y.add_argument("--limit", type=_positive, metavar="N", help="at most N records per customer (overrides limit)")
    y.add_argument("--dry-run", action="store_true", help="list what would be exported; download and upload nothing")
    y.set_defaults(func=sync)
    k = s.add_parser("skipped", help="list records skipped after repeated failures (and those waiting for a retry)")
    k.add_argument("--customer", metavar="NAME")
    k.set_defaults(func=show_skipped)
    r = s.add_parser("retry", help="queue skipped records again; the next sync delivers them")
    r.add_argument("--customer", metavar="NAME", help="only this [beeline:NAME] section")
    r.add_argument("--all", action="store_true", help="every skipped record (of --customer, else of every customer)")
    r.add_argument("ids", nargs="*", metavar="ID", help="record ids (as listed by `beeline skipped`)")
    r.set_defaults(func=retry)


def _customers(ctx):
    found = ctx.cfg.instances("beeline")
    name = ctx.args.customer
    if not found:
        print("asterisk-kit: no [beeline:NAME] section in the config (see `asterisk-kit config example`)",
              file=sys.stderr)
        return None
    if name and name not in found:
        print(f"asterisk-kit: no [beeline:{name}] section (configured: {', '.join(found)})", file=sys.stderr)
        return None
    return [name] if name else list(found)


def sync(ctx) -> int:
    names = _customers(ctx)
    if names is None:
        return 2
    log = ctx.logger("beeline")
    from . import sync as job
    from .render import TemplateError
    failed = locked = 0
    for name in names:
        try:
            lock = JobLock(ctx.cfg.data_dir, f"beeline-{name}").acquire()
        except LockBusy as e:
            log.warning("beeline sync %s: %s", name, e)
            print(f"asterisk-kit: beeline {name}: {e}", file=sys.stderr)
            locked += 1
            continue
        try:
            summary = job.run(ctx.cfg, name, limit=ctx.args.limit, dry_run=ctx.args.dry_run, out=sys.stdout)
            log.info("%s", summary.line())
            print(summary.line())
        except job.SyncError as e:
            line = e.summary.line() if e.summary else f"beeline {name}: {e}"
            log.error("%s", line)
            print(line, file=sys.stderr)
            failed += 1
        except TemplateError as e:
            log.error("beeline sync %s: %s", name, e)
            print(f"asterisk-kit: beeline {name}: {e}", file=sys.stderr)
            failed += 1
        finally:
            lock.release()
    return 1 if failed else (EXIT_LOCKED if locked else 0)


def show_skipped(ctx) -> int:
    from . import sync as job
    conn = job.open_store(ctx.cfg)
    try:
        rows = job.skipped(conn, ctx.args.customer)
        waiting = job.retry_list(conn, ctx.args.customer)
    finally:
        conn.close()
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["skipped_at"]))
        print(f"{r['customer']}\t{r['record_id']}\t{when}\t{r['attempts']} attempts\t{r['error']}")
    if not rows:
        print("no skipped records")
    for r in waiting:
        print(f"{r['customer']}\t{r['record_id']}\twaiting for retry\t{r['attempts']} failed run(s)\t{r['last_error']}")
    return 0


def retry(ctx) -> int:
    a = ctx.args
    if bool(a.all) == bool(a.ids):
        print("asterisk-kit: beeline retry: give record ids or --all", file=sys.stderr)
        return 2
    if a.ids and not all(i.isdigit() for i in a.ids):
        print("asterisk-kit: beeline retry: record ids are digits", file=sys.stderr)
        return 2
    names = _customers(ctx)
    if names is None:
        return 2
    if a.ids and len(names) > 1:
        print(f"asterisk-kit: beeline retry: say which customer with --customer ({', '.join(names)})", file=sys.stderr)
        return 2
    from . import sync as job
    conn = job.open_store(ctx.cfg)
    status = 0
    try:
        for name in names:
            queued, unknown = job.requeue(conn, name, a.ids or None)
            print(f"beeline {name}: {len(queued)} record(s) queued again; the next `asterisk-kit beeline sync` "
                  f"delivers them" + (f" ({' '.join(queued)})" if queued else ""))
            if unknown:
                print(f"asterisk-kit: beeline {name}: not skipped: {' '.join(unknown)}", file=sys.stderr)
                status = 1
    finally:
        conn.close()
    return status
