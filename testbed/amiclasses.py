"""Measure which AMI write class each action of the kit needs, on the real testbed Asterisk.

`python -m testbed.amiclasses` creates one AMI user per write class (and one with none), logs in as
each and tries every action the kit sends; it prints the table docs/ami.md reports. Run on demand.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from asterisk_kit.ami import AmiClient
from asterisk_kit.amiproto import AmiActionError
from testbed.asterisk import Asterisk

CLASSES = ["system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf", "reporting", "cdr",
           "dialplan", "originate", "agi", "cc", "aoc", "test", "security", "message"]

ACTIONS = [
    ("Ping", False, {}),
    ("CoreSettings", False, {}),
    ("CoreShowChannels", True, {}),
    ("ExtensionStateList", True, {}),
    ("PresenceStateList", True, {}),
    ("DeviceStateList", True, {}),
    ("QueueStatus", True, {}),
    ("QueueSummary", True, {}),
    ("ParkedCalls", True, {}),
    ("BridgeList", True, {}),
    ("Status", True, {}),
    ("Command", False, {"Command": "dialplan reload"}),
    ("Command", False, {"Command": "dialplan show nimbox-hangup"}),
    ("ShowDialPlan", True, {"Context": "rec"}),
    ("Reload", False, {"Module": "pbx_config.so"}),
    # The panel's actions (asterisk_kit/blf/actions.py), on things that do not exist: a refusal for
    # another reason than the class still means the class was enough.
    ("Originate", False, {"Channel": "Local/1@rec", "Context": "rec", "Exten": "s", "Priority": "1",
                          "Async": "true"}),
    ("Redirect", False, {"Channel": "PJSIP/none-00000000", "Context": "rec", "Exten": "s", "Priority": "1"}),
    ("BlindTransfer", False, {"Channel": "PJSIP/none-00000000", "Context": "rec", "Exten": "s"}),
    ("Hangup", False, {"Channel": "PJSIP/none-00000000"}),
    ("QueuePause", False, {"Interface": "PJSIP/none", "Paused": "true"}),
]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ami-classes-") as tmp:
        a = Asterisk(Path(tmp)).setup()
        with open(a.etc_dir / "manager.conf", "a") as f:
            for c in CLASSES + ["none"]:
                f.write(f"\n[cls-{c}]\nsecret = s-{c}\nread =\nwrite = {'' if c == 'none' else c}\n")
        a.write_etc("res_parking.conf", "[general]\n[default]\nparkext => 700\nparkpos => 701-720\n")
        a.add_test_dialplan("rec", "[rec]\nexten => s,1,NoOp()\n", reload=False)
        a.start()
        try:
            for name, is_list, fields in ACTIONS:
                ok = []
                for c in CLASSES + ["none"]:
                    with AmiClient("127.0.0.1", a.ami_port, f"cls-{c}", f"s-{c}") as ami:
                        try:
                            if is_list:
                                ami.list_action(name, **fields)
                            else:
                                ami.action(name, **fields)
                            ok.append(c)
                        except AmiActionError as e:
                            if not e.permission_denied:
                                ok.append(f"{c}({e.message})")
                label = name + (f" {fields['Command']!r}" if "Command" in fields else "")
                print(f"{label:45} allowed with write = {' | '.join(ok) or '-'}")
        finally:
            a.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
