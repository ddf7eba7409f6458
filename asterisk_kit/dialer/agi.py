"""AGI handler `dialer-event`: the dialplan reports a call's outcome back into the kit.

AGI(asterisk-kit-agi,dialer-event,RUN,NUMBER,dial,${DIALSTATUS})   outside leg ended (busy, no answer…)
AGI(asterisk-kit-agi,dialer-event,RUN,NUMBER,answer)               the callee answered
AGI(asterisk-kit-agi,dialer-event,RUN,NUMBER,digit,${PRESSED})     IVR: the digit pressed (may be empty)
"""
from __future__ import annotations

import re


def event(agi, cfg, args, log) -> None:
    if len(args) < 3 or not re.fullmatch(r"[0-9]{1,12}", args[0]) or not re.fullmatch(r"[0-9]{1,20}", args[1]):
        log.warning("dialer-event: ignored, not a call of the autodialer: %r", args)
        return
    run_id, number, kind = int(args[0]), args[1], args[2]
    value = args[3] if len(args) > 3 else ""
    from . import store
    conn = store.connect(cfg)
    if kind == "dial":
        ok = store.record_event(conn, run_id, number, dialstatus=re.sub(r"[^A-Z]", "", value.upper())[:20])
    elif kind == "answer":
        ok = store.record_event(conn, run_id, number, answered=True)
    elif kind == "digit":
        ok = store.record_event(conn, run_id, number, answered=True, pressed=re.sub(r"[^0-9*#]", "", value)[:1])
    else:
        log.warning("dialer-event: unknown kind %r", kind)
        return
    log.info("dialer-event run %d %s %s %s%s", run_id, number, kind, value, "" if ok else " (no such call)")
