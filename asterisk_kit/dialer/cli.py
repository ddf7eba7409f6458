"""`asterisk-kit dialer …`: tick (cron), run --now, stop, status, report, import, export."""
from __future__ import annotations

import json
import sys
import time


def register(sub) -> None:
    p = sub.add_parser("dialer", help="autodialer (avtoobzvon)")
    ds = p.add_subparsers(dest="dialer_command", metavar="ACTION")
    ds.required = True
    a = ds.add_parser("tick", help="cron, every minute: start today's scheduled run when due; resume an interrupted run")
    a.set_defaults(func=cmd_tick)
    a = ds.add_parser("run", help="start a run over the whole list now, in the foreground")
    a.add_argument("--now", action="store_true", required=True, help="start immediately (required, to be explicit)")
    a.set_defaults(func=cmd_run)
    a = ds.add_parser("stop", help="stop the active run: nothing more is dialled, waiting call files are taken back")
    a.set_defaults(func=cmd_stop)
    a = ds.add_parser("status", help="the list, the schedule and the active run")
    a.set_defaults(func=cmd_status)
    a = ds.add_parser("report", help="per-number results of a run (default: the last one)")
    a.add_argument("run", nargs="?", type=int)
    a.add_argument("--csv", action="store_true", help="CSV instead of a table")
    a.set_defaults(func=cmd_report)
    a = ds.add_parser("import", help="add numbers from todo.json, CSV or one-per-line text; or load schedule.json")
    a.add_argument("file", help="file to read ('-' for stdin)")
    a.add_argument("--schedule", action="store_true", help="the file is schedule.json")
    a.set_defaults(func=cmd_import)
    a = ds.add_parser("export", help="print the list as todo.json or the schedule as schedule.json")
    a.add_argument("what", choices=["phones", "schedule"])
    a.set_defaults(func=cmd_export)


def _conn(ctx):
    from . import store
    return store.connect(ctx.cfg)


def _execute(ctx, run_id: int, log) -> int:
    from .runner import Runner
    progress = (lambda s: print(s, file=sys.stderr)) if sys.stderr.isatty() else None
    status = Runner(ctx.cfg, _conn(ctx), log, progress=progress).execute(run_id)
    return 0 if status in ("done", "stopped") else 1


def cmd_tick(ctx) -> int:
    from ..lock import LockBusy
    from . import schedule, store
    log = ctx.logger("dialer")
    try:
        lock = ctx.lock("dialer")
    except LockBusy:
        log.debug("tick: a run is in progress in another process")
        return 0
    with lock:
        conn = _conn(ctx)
        active = store.active_run(conn)
        if active is None:
            day = schedule.due(ctx.cfg, conn, schedule.now(ctx.cfg))
            if day is None:
                return 0
            try:
                run_id = store.create_run(conn, "schedule", day)
            except store.RunExists as e:
                log.info("tick: scheduled run not started: %s", e)
                return 0
            log.info("tick: scheduled run %d of %s created", run_id, day)
        else:
            run_id = active["id"]
        return _execute(ctx, run_id, log)


def cmd_run(ctx) -> int:
    from . import schedule, store
    log = ctx.logger("dialer")
    with ctx.lock("dialer"):
        conn = _conn(ctx)
        try:
            run_id = store.create_run(conn, "manual", schedule.now(ctx.cfg).date().isoformat(), by_user="cli")
        except store.RunExists as e:
            print(f"asterisk-kit: {e}; stop it first (`asterisk-kit dialer stop`)", file=sys.stderr)
            return 1
        print(f"run {run_id} started")
        return _execute(ctx, run_id, log)


def cmd_stop(ctx) -> int:
    from ..lock import LockBusy
    from . import store
    log = ctx.logger("dialer")
    conn = _conn(ctx)
    run_id = store.request_stop(conn)
    if run_id is None:
        print("no active run")
        return 0
    log.info("stop of run %d requested from the command line", run_id)
    try:
        lock = ctx.lock("dialer")
    except LockBusy:
        print(f"run {run_id}: stop requested; the running process withdraws what is left")
        return 0
    with lock:          # no process works on it: withdraw here
        if store.run(conn, run_id)["status"] in store.ACTIVE:
            _execute(ctx, run_id, log)
    print(f"run {run_id} stopped")
    return 0


def cmd_status(ctx) -> int:
    from . import schedule, store
    conn = _conn(ctx)
    phones = store.phones(conn)
    sched = store.schedule(conn)
    print(f"numbers: {len(phones)} ({sum(1 for p in phones if p['digit'])} with an IVR digit)")
    print(f"schedule ({schedule.tz_name(ctx.cfg)}): " +
          ", ".join(f"{d} {sched[i] or 'off'}" for i, d in enumerate(schedule.WEEKDAYS)))
    r = store.active_run(conn)
    if r is None:
        print("no active run")
    else:
        counts = dict(conn.execute("SELECT state, count(*) FROM dialer_calls WHERE run_id = ? GROUP BY state",
                                   (r["id"],)).fetchall())
        print(f"run {r['id']} ({r['trigger']}) {r['status']}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def cmd_report(ctx) -> int:
    from . import store
    conn = _conn(ctx)
    run_id = ctx.args.run or (conn.execute("SELECT max(id) FROM dialer_runs").fetchone()[0])
    r = store.run(conn, run_id) if run_id else None
    if r is None:
        print("asterisk-kit: no such run", file=sys.stderr)
        return 1
    rows = store.calls(conn, run_id)
    if ctx.args.csv:
        import csv
        w = csv.writer(sys.stdout)
        w.writerow(["number", "digit", "state", "result", "pressed", "dialstatus", "file_status", "batch", "spooled",
                    "finished"])
        for c in rows:
            w.writerow([c["number"], c["digit"], c["state"], c["result"] or "", c["pressed"] or "",
                        c["dialstatus"] or "", c["file_status"] or "", c["batch"] or "", _ts(c["spooled"]),
                        _ts(c["finished"])])
        return 0
    print(f"run {r['id']} ({r['trigger']}, {r['day']}) {r['status']}" + (f" — {r['note']}" if r["note"] else ""))
    for c in rows:
        print(f"{c['number']:<14} {c['digit'] or '-':<2} {c['result'] or c['state']:<10} "
              f"{('pressed ' + c['pressed']) if c['pressed'] else ''}")
    return 0


def _ts(t) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def cmd_import(ctx) -> int:
    from . import migrate, store
    from .importing import ImportProblem, decode, read_list
    from .numbers import NumberRules
    name = ctx.args.file
    try:
        data = sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()
    except OSError as e:
        print(f"asterisk-kit: {name}: cannot read: {e.strerror}", file=sys.stderr)
        return 1
    conn = _conn(ctx)
    try:
        if ctx.args.schedule:
            try:
                sched = json.loads(decode(data)[0])
            except (ValueError, RecursionError) as e:
                raise migrate.ImportError_(f"schedule.json: not valid JSON ({type(e).__name__}: {e})"[:300]) from None
            store.set_schedule(conn, migrate.parse_schedule(sched))
            print("schedule imported")
            return 0
        parsed = read_list(data, NumberRules.from_config(ctx.cfg))
    except (ImportProblem, migrate.ImportError_) as e:
        print(f"asterisk-kit: {name}: {e}", file=sys.stderr)
        return 1
    for no, line, err in parsed.rejected:
        print(f"rejected line {no}: {line.strip()[:120]!r}: {err}", file=sys.stderr)
    res = store.upsert_phones(conn, parsed.entries)
    print(f"{res['added']} added, {res['updated']} updated, {len(parsed.rejected)} rejected "
          f"({parsed.read} line(s) read as {parsed.encoding}, {parsed.duplicates} duplicate(s) merged"
          + ("; header line skipped" if parsed.header else "") + ")")
    return 1 if parsed.rejected else 0


def cmd_export(ctx) -> int:
    from . import migrate, store
    conn = _conn(ctx)
    print(migrate.export_todo(store.phones(conn)) if ctx.args.what == "phones"
          else migrate.export_schedule(store.schedule(conn)))
    return 0
