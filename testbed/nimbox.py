"""Kit configs and test dialplan for the NiMbox tests (hook on the testbed, sync on MariaDB).

Test calls: `Local/NUMBER@kit-test-nimbox` attaches the kit's hangup handler (Gosub nimbox-attach)
between two stamp handlers that write the wall time (ms) into AstDB family kittest, keyed by the caller
number: `begin` runs just before the kit's handler, `end` just after it (hangup handlers
run last pushed first), so a test reads how long the kit held the channel's teardown. The callee
answers, waits DIGIT-of-last seconds (0 -> 1 s), hangs up.
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
        return [dict(zip(CDR_COLUMNS, row)) for row in csv.reader(f)]
