"""A kit config for autodialer tests on the testbed, and the test callee it dials.

The callee context plays the other end of each call by the number's last digit:
1 answers, 2 is busy, 3 rings without answer, 4 answers and presses 1, 5 is congested,
6 answers and presses 2. Every call that reaches it is logged to a file, one number per line,
so tests can count how often a number was really dialled; LOG.cid gets "number callerid" per call."""
from __future__ import annotations

from pathlib import Path

from testbed.asterisk import Asterisk, asterisk_root, kit_section

CALLEE = """[kit-test-callee]
exten => _X.,1,System(echo ${{EXTEN}} >> {log})
 same => n,System(echo ${{EXTEN}} ${{FILTER(0-9,${{CALLERID(num)}})}} >> {log}.cid)
 same => n,Goto(kit-test-callee-${{EXTEN:-1}},s,1)

[kit-test-callee-1]
exten => s,1,Answer()
 same => n,Wait(4)
 same => n,Hangup()
[kit-test-callee-2]
exten => s,1,Busy(5)
[kit-test-callee-3]
exten => s,1,Ringing()
 same => n,Wait(30)
[kit-test-callee-4]
exten => s,1,Answer()
 same => n,Wait(3)
 same => n,SendDTMF(1)
 same => n,Wait(4)
 same => n,Hangup()
[kit-test-callee-5]
exten => s,1,Congestion(5)
[kit-test-callee-6]
exten => s,1,Answer()
 same => n,Wait(3)
 same => n,SendDTMF(2)
 same => n,Wait(4)
 same => n,Hangup()
"""


def beep() -> str:
    return str(asterisk_root() / "usr/share/asterisk/sounds/en_US_f_Allison/beep")


def dialer_config(tmp_path: Path, a: Asterisk, **dialer) -> Path:
    d = {"dial_out": "Local/${NUMBER}@kit-test-callee", "ring_seconds": "3", "wait_time": "15",
         "sound": beep(), "ivr_prompt": beep(), "ivr_wait_seconds": "6", "bundle": "5", "timeout": "2",
         "max_in_progress": "6", "result_wait_seconds": "60", "callerid": '"Kit test" <84950000000>'}
    d.update({k: str(v) for k, v in dialer.items()})
    cfg = tmp_path / "kit.ini"
    cfg.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\nlevel = DEBUG\n"
                   + kit_section(a) + "[dialer]\n" + "".join(f"{k} = {v}\n" for k, v in d.items()))
    return cfg


def install_callee(a: Asterisk, log: Path) -> None:
    a.add_test_dialplan("dialer_callee", CALLEE.format(log=log))


def dialled(log: Path) -> list:
    return log.read_text().split() if log.exists() else []


def callerids(log: Path) -> list:
    """[(number, caller ID number the callee saw), ...] in the order the calls arrived."""
    cid = log.with_name(log.name + ".cid")
    return [tuple(line.split()) for line in cid.read_text().splitlines()] if cid.exists() else []
