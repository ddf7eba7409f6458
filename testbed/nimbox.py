"""Kit configs and test dialplan for the NiMbox tests (hook on the testbed, sync on MariaDB).

Test calls: `Local/NUMBER@kit-test-nimbox` attaches the kit's hangup handler (Gosub nimbox-attach)
between two stamp handlers that write the wall time (ms) into AstDB family kittest, keyed by the caller
number: `begin` runs just before the kit's handler, `end` just after it (hangup handlers
run last pushed first), so a test reads how long the kit held the channel's teardown. The callee
answers, waits DIGIT-of-last seconds (0 -> 1 s), hangs up.

Bursts: `Local/NUMBER@kit-test-nimbox-burst` is the same call, but the callee hangs up at the wall
time in the global KITBURST, so a whole batch of calls hangs up at the same instant
(hangup_burst).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict, Optional

from testbed.asterisk import Asterisk, kit_section

DIALPLAN = r"""[kit-test-nimbox]
exten => _X.,1,Set(CHANNEL(hangup_handler_push)=kit-test-stamp,end,1)
 same => n,Gosub(nimbox-attach,s,1)
 same => n,Set(CHANNEL(hangup_handler_push)=kit-test-stamp,begin,1)
 same => n,Set(CDR(recordingfile)=out-${EXTEN}-${CALLERID(num)}-${STRFTIME(${EPOCH},,%Y%m%d-%H%M%S)}-${UNIQUEID}.wav)
 same => n,Dial(Local/${EXTEN}@kit-test-nimbox-callee)
 same => n,Hangup()

[kit-test-nimbox-burst]
exten => _X.,1,Set(CHANNEL(hangup_handler_push)=kit-test-stamp,end,1)
 same => n,Gosub(nimbox-attach,s,1)
 same => n,Set(CHANNEL(hangup_handler_push)=kit-test-stamp,begin,1)
 same => n,Dial(Local/${EXTEN}@kit-test-nimbox-burst-callee)
 same => n,Hangup()

[kit-test-nimbox-burst-callee]
exten => _X.,1,Answer()
 same => n,Wait(${MATH(${GLOBAL(KITBURST)}-${STRFTIME(,,%s.%3q)})})
 same => n,Hangup()

[kit-test-nimbox-callee]
exten => _X.,1,Answer()
 same => n,Wait(${IF($[${EXTEN:-1} > 0]?${EXTEN:-1}:1)})
 same => n,Hangup()

[kit-test-stamp]
exten => begin,1,Set(DB(kittest/${CALLERID(num)}-begin)=${STRFTIME(,,%s.%3q)})
 same => n,Return()
exten => end,1,Set(DB(kittest/${CALLERID(num)}-end)=${STRFTIME(,,%s.%3q)})
 same => n,Return()
"""


# The old script's destination rule as documented in docs/nimbox.md, with the area code 495.
OLD_SCRIPT_RULES = r"^9(\d{7})$ => 495\1; ^9(.*)$ => \1"


def nimbox_config(tmp_path: Path, a: Optional[Asterisk], url: str, token: str = "tok-secret",
                  mysql: str = "", **nimbox) -> Path:
    n = {"url": url, "token": token, "hook_timeout": "1", "timeout": "5", "concurrency": "4",
         "destination_rules": OLD_SCRIPT_RULES,
         "recording_url": "https://pbx.example.com/monitor/{year}/{month}/{day}/{recordingfile}"}
    n.update({k: str(v) for k, v in nimbox.items()})
    cfg = tmp_path / "kit.ini"
    text = (f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\nlevel = DEBUG\n"
            + (kit_section(a) if a else "[asterisk]\nami_user = x\nami_secret = x\nrun_user =\n")
            + mysql + "[nimbox]\n" + "".join(f"{k} = {v}\n" for k, v in n.items()))
    cfg.write_text(text)
    return cfg


def place_call(a: Asterisk, number: str, caller: str = "101", tag: str = "") -> None:
    """A call file that runs NUMBER through the test context; the caller side just waits."""
    name = f"nimbox-{number}-{tag or time.monotonic_ns()}.call"
    tmp = a.spool_dir / "tmp" / name
    tmp.write_text(f"Channel: Local/{number}@kit-test-nimbox\nCallerID: \"Test\" <{caller}>\n"
                   f"Application: Wait\nData: 20\nArchive: no\n")
    os.rename(tmp, a.spool_dir / "outgoing" / name)


def stamps(a: Asterisk) -> Dict[str, Dict[str, float]]:
    """caller number -> {"begin": t, "end": t} from AstDB."""
    out: Dict[str, Dict[str, float]] = {}
    for line in a.cli("database show kittest").splitlines():
        if not line.startswith("/kittest/"):
            continue
        key, _, value = line.partition(":")
        linkedid, _, which = key.strip()[len("/kittest/"):].rpartition("-")
        out.setdefault(linkedid, {})[which] = float(value.strip())
    return out


CDR_COLUMNS = ("calldate", "src", "dst", "duration", "billsec", "disposition", "recordingfile", "linkedid",
               "uniqueid", "sequence", "channel", "dcontext")


def enable_cdr_csv(a: Asterisk) -> Path:
    """Make the testbed write its CDR (the columns the kit reads) to log/cdr-custom/nimbox.csv, so a
    test can load what Asterisk itself recorded into the MariaDB cdr table."""
    (a.log_dir / "cdr-custom").mkdir(exist_ok=True)
    fields = ",".join("${CSV_QUOTE(${CDR(%s)})}" % ("start" if c == "calldate" else c) for c in CDR_COLUMNS)
    a.write_etc("cdr_custom.conf", f"[mappings]\nnimbox.csv => {fields}\n")
    # Loaded at start without a config it may have declined: load it, or reload it when it is there.
    shown = a.cli("module show like cdr_custom")
    if "cdr_custom.so" in shown and "Not Running" not in shown:
        a.cli("module reload cdr_custom.so")
    else:   # declined at start ("Not Running"): take it out and load it again
        if "cdr_custom.so" in shown:
            a.cli("module unload cdr_custom.so")
        a.cli("module load cdr_custom.so")
    return a.log_dir / "cdr-custom" / "nimbox.csv"


def read_cdr_csv(path: Path):
    import csv
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [dict(zip(CDR_COLUMNS, row, strict=True)) for row in csv.reader(f)]


def hangup_burst(a: Asterisk, fake, cfg: Path, n: int, first_caller: int, settle: float = 3.0,
                 timeout: float = 180.0, deliver: bool = True) -> Dict[str, object]:
    """N calls that all hang up at the same instant; waits until every one left its end stamp and
    is in the fake NiMbox or in the kit's outbox (or TIMEOUT). Returns per-caller figures:
    held (teardown held by the kit's handler, s), in_nimbox, in_outbox, logged (a log line of the
    hook names the call), lost (none of those), to_record (hangup -> NiMbox record, s).
    DELIVER=False: wait for the end stamps only."""
    import sqlite3
    callers = [str(first_caller + i) for i in range(n)]
    a.cli(f"dialplan set global KITBURST {time.time() + settle + n * 0.03:.3f}")
    names = []
    for c in callers:
        name = f"burst-{c}-{time.monotonic_ns()}.call"
        (a.spool_dir / "tmp" / name).write_text(f"Channel: Local/8495{c:0>6}1@kit-test-nimbox-burst\n"
                                                f"CallerID: \"Burst\" <{c}>\nApplication: Wait\nData: 60\n"
                                                f"Archive: no\n")
        names.append(name)
    for name in names:
        os.rename(a.spool_dir / "tmp" / name, a.spool_dir / "outgoing" / name)
    data = Path(cfg).parent / "data" / "asterisk-kit.sqlite"
    log_dir = Path(cfg).parent / "log"
    deadline = time.monotonic() + timeout
    while True:
        st = stamps(a)
        ended = [c for c in callers if "end" in st.get(c, {}) and "begin" in st.get(c, {})]
        with fake.lock:
            in_nimbox = {r["source"] for r in fake.records.values()} & set(callers)
        in_outbox = set()
        if data.exists():
            conn = sqlite3.connect(str(data), timeout=10)
            try:
                in_outbox = {r[0] for r in conn.execute("SELECT source FROM nimbox_calls")} & set(callers)
            except sqlite3.OperationalError:   # table not there yet
                pass
            finally:
                conn.close()
        if (len(ended) == n and (not deliver or in_nimbox | in_outbox >= set(callers))) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    text = "".join(p.read_text(errors="replace") for p in log_dir.glob("*.log")) if log_dir.exists() else ""
    logged = {c for c in callers if f" {c} -> " in text}
    with fake.lock:
        at = {r["source"]: r["at"] for r in fake.records.values()}
    return {"callers": callers, "ended": ended, "held": [st[c]["end"] - st[c]["begin"] for c in ended],
            "to_record": [at[c] - st[c]["begin"] for c in ended if c in at],
            "in_nimbox": in_nimbox, "in_outbox": in_outbox, "logged": logged,
            "lost": set(callers) - in_nimbox - in_outbox}
