"""AGI handler `nimbox-call`: run by the hangup handler of a reported call (dialplan/nimbox.conf.j2).

AGI(asterisk-kit-agi,nimbox-call,START_EPOCH,SRC,DST,DURATION,BILLSEC,DISPOSITION,RECORDINGFILE,LINKEDID)

It sends the call to NiMbox with a short timeout ([nimbox] hook_timeout), then records the outcome
in the store; when NiMbox cannot be reached the call is committed to the outbox for
`asterisk-kit nimbox sync`. Stdlib only on this path (no requests), the store opened after the send.
"""
from __future__ import annotations

import re

ARGS = ("start", "src", "dst", "duration", "billsec", "disposition", "recordingfile", "linkedid")


def _int(v: str) -> int:
    return int(v) if re.fullmatch(r"[0-9]{1,9}", v or "") else 0


def call(agi, cfg, args, log) -> None:
    from . import client
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
    # Send first, store after: the request leaves before the store is even opened (the channel's
    # teardown waits for us). The outcome, or the call itself when NiMbox could not take it, is
    # committed before the script exits. A kill between the two loses no call: it is in the CDR,
    # which the replicator reads; and a second report of a call NiMbox has answers "exists".
    n = cfg["nimbox"]
    res = client.send_once(n["url"], n["token"], c.params(), n["hook_timeout"])
    from . import outbox
    conn = outbox.connect(cfg)
    try:
        outbox.record(conn, [(c, res.kind if res.done else outbox.PENDING, res.detail)], "hook")
    finally:
        conn.close()
    level = 30 if res.kind in (client.REJECTED, client.TEMPORARY) else 20
    log.log(level, "nimbox-call: %s %s -> %s: %s (%s)%s", c.initiated, c.source, c.destination, res.kind,
            res.detail, "" if res.done else "; kept in the outbox")
