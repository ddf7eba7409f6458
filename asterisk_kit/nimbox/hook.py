"""AGI handler `nimbox-call`: run by the hangup handler of a reported call (dialplan/nimbox.conf.j2).

AGI(asterisk-kit-agi,nimbox-call,START_EPOCH,SRC,DST,DURATION,BILLSEC,DISPOSITION,RECORDINGFILE,LINKEDID)

Write-ahead: the call is committed to the outbox (pending) first, then sent to NiMbox, then its
outcome recorded; whatever kills the process or fails in between, the call waits in the outbox for
`asterisk-kit nimbox sync`. [nimbox] hook_timeout bounds the whole hook from its start: SQLite's
busy wait, the DNS lookup, the request and the final write share one deadline (the channel's
teardown waits for us). Stdlib only on this path (no requests).
"""
from __future__ import annotations

import re
import sqlite3
import time

ARGS = ("start", "src", "dst", "duration", "billsec", "disposition", "recordingfile", "linkedid")


def _int(v: str) -> int:
    return int(v) if re.fullmatch(r"[0-9]{1,9}", v or "") else 0


def call(agi, cfg, args, log) -> None:
    from . import client
    from .call import BadCall, CallBuilder
    t0 = time.monotonic()
    n = cfg["nimbox"]
    deadline = t0 + n["hook_timeout"]
    if len(args) != len(ARGS):
        log.warning("nimbox-call: expected %d arguments (%s), got %d: %r", len(ARGS), ",".join(ARGS), len(args), args)
        return
    a = dict(zip(ARGS, (x.strip() for x in args), strict=True))
    builder = CallBuilder(cfg)
    if not builder.qualifies(a["dst"], a["disposition"]):
        log.debug("nimbox-call: not reported (filter): dst %r disposition %r", a["dst"], a["disposition"])
        return
    if not re.fullmatch(r"[0-9]{9,11}(\.[0-9]{1,6})?", a["start"]):
        log.warning("nimbox-call: start %r is not an epoch time; call not reported", a["start"])
        return
    try:
        c = builder.build(builder.local_from_epoch(float(a["start"])), a["src"], a["dst"], _int(a["duration"]),
                          _int(a["billsec"]), a["recordingfile"], a["linkedid"])
    except BadCall as e:
        log.warning("nimbox-call: not reported: %s", e)
        return
    what = f"{c.initiated} {c.source} -> {c.destination} (linkedid {c.linkedid or '-'})"
    from . import outbox
    conn = None
    stored = False
    try:
        conn = outbox.connect(cfg, timeout=max(deadline - time.monotonic(), 0.0))
        # WAL + NORMAL: a commit survives the process being killed (what the hook must survive) without
        # an fsync per commit, which made a burst of hooks queue for the write lock past their
        # deadline. A power cut may lose the last commits: those calls are in the CDR for the sync.
        conn.execute("PRAGMA synchronous = NORMAL")
        state = outbox.state_of(conn, c)
        if state in outbox.DONE_STATES:
            log.info("nimbox-call: %s: already sent (%s)", what, state)
            conn.close()
            return
        outbox.add_pending(conn, c, "hook")
        stored = True
    except sqlite3.Error as e:   # store busy past the deadline, disk full: send anyway, the CDR has it
        log.warning("nimbox-call: %s: not written to the outbox (%s: %s); sending anyway", what,
                    type(e).__name__, e)
    try:
        left = deadline - time.monotonic()
        if left <= 0.0:
            log.warning("nimbox-call: %s: hook_timeout spent before sending; %s", what,
                        "kept in the outbox" if stored else "the next sync finds it in the CDR")
            return
        # Keep a little of the deadline for recording the outcome: a request that used all of it left the
        # write no busy wait at all, and a burst of hooks then lost their attempts to "database is locked".
        reserve = min(0.25, left / 4) if conn is not None else 0.0
        res = client.send_once(n["url"], n["token"], c.params(), left - reserve)
        recorded = False
        if conn is not None:
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(max(deadline - time.monotonic(), 0.0) * 1000)}")
                outbox.record(conn, [(c, res.kind if res.done else outbox.PENDING, res.detail)], "hook")
                recorded = True
            except sqlite3.Error as e:   # the call stays pending: the next sync sends it, NiMbox says "exists"
                log.warning("nimbox-call: %s: outcome %s not recorded (%s: %s)", what, res.kind,
                            type(e).__name__, e)
        level = 30 if res.kind in (client.REJECTED, client.TEMPORARY) else 20
        kept = "" if res.done else ("; kept in the outbox" if stored else "; the next sync finds it in the CDR")
        log.log(level, "nimbox-call: %s: %s (%s)%s%s", what, res.kind, res.detail, kept,
                "" if recorded or not stored else "; left pending")
    finally:
        if conn is not None:
            conn.close()
