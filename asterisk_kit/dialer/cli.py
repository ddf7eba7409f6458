"""`asterisk-kit dialer …`: tick (cron), run --now, stop, status, report, import, export."""
from __future__ import annotations

import json
import sys
import time


def register(sub) -> None:
    p = sub.add_parser("dialer", help="autodialer (avtoobzvon)")
    ds = p.add_subparsers(dest="dialer_command", metavar="ACTION")
    ds.required = True
    a = ds.add_parser("tick", help="cron, every minute: start the scheduled runs that are due; resume interrupted runs")
    a.set_defaults(func=cmd_tick)
    a = ds.add_parser("run", help="start a run over the whole list now, in the foreground")
    a.add_argument("--now", action="store_true", required=True, help="start immediately (required, to be explicit)")
    a.add_argument("--campaign", type=int, default=1, metavar="ID", help="the campaign (default 1)")
    a.set_defaults(func=cmd_run)
    a = ds.add_parser("stop", help="stop the active run: nothing more is dialled, waiting call files are taken back")
    a.add_argument("--campaign", type=int, default=None, metavar="ID", help="the campaign (default: the first "
                                                                          "active run)")
    a.set_defaults(func=cmd_stop)
    a = ds.add_parser("status", help="the list, the schedule and the active run")
    a.set_defaults(func=cmd_status)
    a = ds.add_parser("report", help="per-number results of a run (default: the last one)")
    a.add_argument("run", nargs="?", type=int)
    a.add_argument("--csv", action="store_true", help="CSV instead of a table")
    a.set_defaults(func=cmd_report)
    a = ds.add_parser("import", help="add numbers from todo.json, CSV, XLSX or one-per-line text to a campaign; "
                                     "or load schedule.json")
    a.add_argument("file", help="file to read ('-' for stdin)")
    a.add_argument("--schedule", action="store_true", help="the file is schedule.json")
    a.add_argument("--campaign", default="1", metavar="ID|NAME", help="the campaign, by number or name (default 1)")
    a.add_argument("--replace", action="store_true", help="replace the campaign's list: numbers not in the file are "
                                                          "deleted")
    a.add_argument("--report", metavar="CSV", help="write the full per-line report (every line: added, updated "
                                                   "with what changed, merged, rejected) to this CSV file")
    a.set_defaults(func=cmd_import)
    a = ds.add_parser("export", help="print the list as todo.json or the schedule as schedule.json")
    a.add_argument("what", choices=["phones", "schedule"])
    a.set_defaults(func=cmd_export)
    from . import tokens_cli
    tokens_cli.register(ds)     # dialer token create|list|revoke


def _conn(ctx):
    from . import store
    return store.connect(ctx.cfg)


def _execute(ctx, run_id: int, log) -> int:
    """Work on every active run (those of other campaigns too) until all have ended; RUN_ID's exit code."""
    from .runner import Runner
    progress = (lambda s: print(s, file=sys.stderr)) if sys.stderr.isatty() else None
    status = Runner(ctx.cfg, _conn(ctx), log, progress=progress).execute(run_id)
    return 0 if status in ("done", "stopped") else 1


def start_due(cfg, conn, log) -> None:
    """Create today's scheduled run of every campaign whose window has come (not paused or archived)."""
    from . import campaigns, schedule, store
    at = schedule.now(cfg)
    for c in store.campaigns(conn):
        if c["state"] != "active" or store.active_run(conn, c["id"]):
            continue
        day = schedule.due(cfg, conn, at, c["id"])
        if day is None:
            continue
        try:
            run_id = store.create_run(conn, "schedule", day, campaign_id=c["id"],
                                      settings=campaigns.resolve(cfg, json.loads(c["settings"])))
        except store.RunExists as e:
            log.info("tick: scheduled run of campaign %d not started: %s", c["id"], e)
            continue
        log.info("tick: scheduled run %d of campaign %d (%s) created", run_id, c["id"], day)


def cmd_tick(ctx) -> int:
    from ..lock import LockBusy
    from . import store
    log = ctx.logger("dialer")
    try:
        lock = ctx.lock("dialer")
    except LockBusy:
        log.debug("tick: a run is in progress in another process")
        return 0
    with lock:
        conn = _conn(ctx)
        start_due(ctx.cfg, conn, log)
        active = store.active_run(conn)
        if active is None:
            return 0
        return _execute(ctx, active["id"], log)


def cmd_run(ctx) -> int:
    from . import campaigns, schedule, store
    log = ctx.logger("dialer")
    with ctx.lock("dialer"):
        conn = _conn(ctx)
        camp = store.campaign(conn, ctx.args.campaign)
        if camp is None or camp["state"] == "archived":
            print(f"asterisk-kit: no campaign {ctx.args.campaign} to run", file=sys.stderr)
            return 1
        try:
            run_id = store.create_run(conn, "manual", schedule.now(ctx.cfg).date().isoformat(), by_user="cli",
                                      campaign_id=camp["id"],
                                      settings=campaigns.resolve(ctx.cfg, json.loads(camp["settings"])))
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
    run_id = store.request_stop(conn, campaign_id=ctx.args.campaign)
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
        r = store.run(conn, run_id)
        if r is not None and r["status"] in store.ACTIVE:
            _execute(ctx, run_id, log)
    print(f"run {run_id} stopped")
    return 0


def cmd_status(ctx) -> int:
    from . import schedule, store
    conn = _conn(ctx)
    for c in store.campaigns(conn):
        phones = store.phones(conn, c["id"])
        wins = store.windows(conn, c["id"])
        print(f"campaign {c['id']} {c['name']!r} ({c['state']})")
        print(f"  numbers: {len(phones)} ({sum(1 for p in phones if p['digit'])} with an IVR digit)")
        print(f"  schedule ({schedule.tz_name(ctx.cfg)}): " +
              ", ".join(f"{d} {(w[0] + '-' + (w[1] or '24:00')) if w else 'off'}"
                        for d, w in zip(schedule.WEEKDAYS, wins.values(), strict=True)))
        r = store.active_run(conn, c["id"])
        if r is None:
            print("  no active run")
        else:
            counts = dict(conn.execute("SELECT state, count(*) FROM dialer_calls WHERE run_id = ? GROUP BY state",
                                       (r["id"],)).fetchall())
            print(f"  run {r['id']} ({r['trigger']}) {r['status']}: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
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


SHOWN = 20      # report lines of each kind printed; --report writes all of them


def find_campaign(conn, ref: str):
    """A campaign by id or (exact) name, or None."""
    from . import store
    ref = ref.strip()
    if ref.isdigit():
        return store.campaign(conn, int(ref))
    rows = [c for c in store.campaigns(conn, archived=True) if c["name"] == ref]
    return rows[0] if len(rows) == 1 else None


def cmd_import(ctx) -> int:
    from . import listimport, migrate, store
    from .importing import ImportProblem, decode
    from .media_strings import MediaError
    from .numbers import NumberRules
    name = ctx.args.file
    try:
        data = sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()
    except OSError as e:
        print(f"asterisk-kit: {name}: cannot read: {e.strerror}", file=sys.stderr)
        return 1
    conn = _conn(ctx)
    camp = find_campaign(conn, ctx.args.campaign)
    if camp is None:
        known = ", ".join(f"{c['id']} {c['name']!r}" for c in store.campaigns(conn, archived=True))
        print(f"asterisk-kit: no campaign {ctx.args.campaign!r} (campaigns: {known or 'none'})", file=sys.stderr)
        return 1
    try:
        if ctx.args.schedule:
            try:
                sched = json.loads(decode(data)[0])
            except (ValueError, RecursionError) as e:
                raise migrate.ImportError_(f"schedule.json: not valid JSON ({type(e).__name__}: {e})"[:300]) from None
            store.set_schedule(conn, migrate.parse_schedule(sched), campaign_id=camp["id"])
            print("schedule imported")
            return 0
        parsed = listimport.read(data, NumberRules.from_config(ctx.cfg), name,
                                 max_bytes=max(len(data), ctx.cfg["dialer"]["import_max_bytes"]))
    except (ImportProblem, MediaError, migrate.ImportError_) as e:
        print(f"asterisk-kit: {name}: {e}", file=sys.stderr)
        return 1
    res = listimport.apply(conn, parsed, camp["id"], replace=ctx.args.replace)
    rid = listimport.save(conn, res, camp["id"], "cli", name, ctx.args.replace)
    for kind in listimport.KINDS:
        out = sys.stderr if kind == "rejected" else sys.stdout
        lines = res.lines[kind]
        shown = lines if kind == "rejected" else lines[:SHOWN]
        for no, number, text, digit, comment, detail in shown:
            what = repr(text[:120]) if kind == "rejected" else number
            why = listimport.describe(kind, {"digit": digit, "comment": comment,
                                             "detail": json.loads(detail) if detail else {}})
            print(f"{kind} line {no}: {what}" + (f": {why}" if why else ""), file=out)
        if len(lines) > len(shown):
            print(f"… and {len(lines) - len(shown)} more {kind} line(s)"
                  + ("" if ctx.args.report else " (--report FILE lists every line)"), file=out)
    if ctx.args.report:
        try:
            with open(ctx.args.report, "w", encoding="utf-8", newline="") as f:
                for chunk in listimport.csv_lines(conn, rid):
                    f.write(chunk)
        except OSError as e:
            print(f"asterisk-kit: {ctx.args.report}: cannot write the report: {e.strerror}", file=sys.stderr)
            return 1
    c = res.counts
    print(f"campaign {camp['id']} {camp['name']!r}: "
          f"{c['added']} added, {c['updated']} updated, {c['rejected']} rejected "
          f"({parsed.read} line(s) read as {parsed.encoding}, {parsed.duplicates} duplicate(s) merged"
          + ("; header line skipped" if parsed.header else "") + ")")
    print(f"{c['changed']} of the updated numbers changed"
          + (f"; list replaced: {c['removed']} number(s) not in the file removed" if ctx.args.replace else ""))
    return 1 if parsed.rejected else 0


def cmd_export(ctx) -> int:
    from . import migrate, store
    conn = _conn(ctx)
    print(migrate.export_todo(store.phones(conn)) if ctx.args.what == "phones"
          else migrate.export_schedule(store.schedule(conn)))
    return 0
