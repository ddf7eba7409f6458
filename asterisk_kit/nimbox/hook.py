"""AGI handler `nimbox-call`: run by the hangup handler of a reported call (dialplan/nimbox.conf.j2).

AGI(asterisk-kit-agi,nimbox-call,START_EPOCH,SRC,DST,DURATION,BILLSEC,DISPOSITION,RECORDINGFILE,LINKEDID)

It writes the call to the outbox (committed), sends it to NiMbox with a short timeout
([nimbox] hook_timeout), and records the outcome; when NiMbox cannot be reached the call simply
stays in the outbox for `asterisk-kit nimbox sync`. Stdlib only on this path (no requests).
"""
from __future__ import annotations

import re

ARGS = ("start", "src", "dst", "duration", "billsec", "disposition", "recordingfile", "linkedid")


def _int(v: str) -> int:
    return int(v) if re.fullmatch(r"[0-9]{1,9}", v or "") else 0


def call(agi, cfg, args, log) -> None:
    from . import client, outbox
    from .call import BadCall, CallBuilder
    if len(args) != len(ARGS):
        log.warning("nimbox-call: expected %d arguments (%s), got %d: %r", len(ARGS), ",".join(ARGS), len(args), args)
        return
    a = dict(zip(ARGS, (x.strip() for x in args)))
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
    conn = outbox.connect(cfg)
    try:
        known = outbox.state_of(conn, c)
        if known and known != outbox.PENDING:
            log.info("nimbox-call: %s %s -> %s already %s", c.initiated, c.source, c.destination, known)
            return
        outbox.add_pending(conn, c, "hook")
        n = cfg["nimbox"]
        res = client.send_once(n["url"], n["token"], c.params(), n["hook_timeout"])
        outbox.record(conn, [(c, res.kind if res.done else outbox.PENDING, res.detail)], "hook")
        level = 30 if res.kind in (client.REJECTED, client.TEMPORARY) else 20
        log.log(level, "nimbox-call: %s %s -> %s: %s (%s)%s", c.initiated, c.source, c.destination, res.kind,
                res.detail, "" if res.done else "; kept in the outbox")
    finally:
        conn.close()
