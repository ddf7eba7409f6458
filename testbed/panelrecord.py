"""Record the AMI stream an operator panel sees, on the panel testbed (testbed/panelbed.py: real
baresip phones, FreePBX-shaped hints, a queue, a parking lot), for tests/test_panel_model.py.

`python -m testbed.panelrecord tests/data/ami` writes panel.bin (every byte Asterisk sent to the
panel's read-only user, shipped manager/asterisk-kit-panel.conf) and panel.json (the steps: the
panel's own list actions, at the byte offset where it sent them, and `mark` steps naming what the
test had just done, so a replay can check the model at each point). Run once; the files are committed.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from asterisk_kit.blf.calls.snapshot import SNAPSHOT_ACTIONS
from testbed.amirecord import Recorder
from testbed.panelbed import PanelBed, reader_block

READER_SECRET = "panel-reader-secret"


class PanelRecorder(Recorder):
    def mark(self, what: str) -> None:
        self.steps.append({"call": "mark", "args": {"what": what}, "offset": len(self.stream)})

    def snapshot(self) -> None:
        for action in SNAPSHOT_ACTIONS:
            self.step("list_action", action=action)


def wait_cli(bed: PanelBed, command: str, needle: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in bed.cli(command):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{needle!r} not in {command!r}:\n{bed.cli(command)}")


def scenario(bed: PanelBed, r: PanelRecorder) -> None:
    """The calls the replay test checks; each `mark` names the state right after it."""
    r.snapshot()
    r.mark("idle")
    bed.caller("101", "79161234567", "Иван Клиент")
    wait_cli(bed, "core show channels", "PJSIP/101-")
    r.linger(1.5)
    r.mark("outside caller rings 101")
    r.snapshot()
    bed.phones["101"].command("/accept")
    r.linger(2.0)
    r.mark("101 talks to the outside caller")
    r.snapshot()
    bed.admin("BlindTransfer", Channel=bed.channel_of("PJSIP/101"), Exten="102", Context="from-internal")
    r.linger(2.0)
    r.mark("blind transfer: 102 rings with the outside caller")
    bed.phones["102"].command("/accept")
    r.linger(2.0)
    r.mark("102 talks to the outside caller")
    r.snapshot()
    bed.cli("channel request hangup all")
    r.linger(1.5)
    r.mark("all hung up")
    bed.phones["103"].command("/dial 101")
    r.linger(1.5)
    r.mark("103 calls 101")
    bed.phones["101"].command("/accept")
    r.linger(1.5)
    r.mark("103 talks to 101")
    r.snapshot()
    bed.cli("channel request hangup all")
    r.linger(1.5)
    bed.cli("devstate change Custom:DND101 BUSY")
    bed.cli("presencestate change CustomPresence:102 AWAY,,lunch")
    r.linger(1.0)
    r.mark("101 DND, 102 away")
    r.snapshot()
    bed.admin("QueuePause", Queue="sales", Interface="PJSIP/103", Paused="true", Reason="break")
    bed.caller("500", "79035551122", "Пётр Очередь")
    r.linger(2.0)
    r.mark("queue caller waits, 102 rings, 103 paused")
    r.snapshot()
    bed.phones["102"].command("/accept")
    r.linger(2.0)
    r.mark("102 talks to the queue caller")
    r.snapshot()
    bed.cli("channel request hangup all")
    r.linger(1.5)
    r.mark("queue call done")
    bed.caller("500", "79037770000", "Abandoner")
    r.linger(2.0)
    bed.cli("channel request hangup all")
    r.linger(1.5)
    r.mark("queue caller abandoned")
    bed.caller("700", "79990001122", "Parked Guest")
    r.linger(2.0)
    r.mark("outside caller parked")
    r.snapshot()
    bed.cli("channel request hangup all")
    r.linger(1.5)
    r.mark("parked caller gave up")
    r.snapshot()
    r.step("action", action="Logoff")


def main(argv=None) -> int:
    out = Path((argv or sys.argv[1:] or ["tests/data/ami"])[0])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="panel-record-") as tmp:
        bed = PanelBed(Path(tmp)).start(extra_manager=reader_block(READER_SECRET))
        try:
            r = PanelRecorder(bed.asterisk.ami_port)
            r.banner()
            r.step("login", user="asterisk-kit-panel", secret=READER_SECRET, events=True)
            scenario(bed, r)
            r.save(out, "panel", "operator panel: outside caller to 101, blind transfer to 102, 103 calls 101, "
                                 "DND and presence, queue sales (waiting, answered, abandoned), a parked call; "
                                 "read-only user of manager/asterisk-kit-panel.conf")
        finally:
            bed.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
