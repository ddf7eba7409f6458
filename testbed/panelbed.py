"""An operator-panel testbed: a private Asterisk 22 with FreePBX-shaped hints, three PJSIP endpoints
with real baresip phones registered, an app_queue queue, a res_parking lot and an outside line.

Used by tests/test_panel_live.py (live) and testbed/panelrecord.py (records the AMI streams that
tests/test_panel_model.py replays).

- ext-local: `exten => 101,hint,PJSIP/101&Custom:DND101,CustomPresence:101` (as FreePBX writes it);
  dialling 10X rings PJSIP/10X; 500 is the queue `sales` (members PJSIP/102 and PJSIP/103);
  700 parks the caller (lot `default`, spaces 701-720).
- pstn-in: an outside caller, made by originating `Local/<dest>@pstn-in` with a CallerID.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Dict, List

from asterisk_kit.ami import AmiClient
from testbed.asterisk import Asterisk, free_port
from testbed.baresip import BARESIP, Baresip

PHONES = ["101", "102", "103"]
SECRET = "panel-sip-secret"

READER = "asterisk-kit-panel"


def pjsip_conf(sip_port: int, users: List[str]) -> str:
    out = f"[transport-udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:{sip_port}\n"
    for u in users:
        out += f"""
[{u}]
type = endpoint
context = from-internal
disallow = all
allow = ulaw,alaw
auth = {u}
aors = {u}
callerid = Phone {u} <{u}>

[{u}]
type = auth
auth_type = userpass
username = {u}
password = {SECRET}-{u}

[{u}]
type = aor
max_contacts = 1
"""
    return out


DIALPLAN = """[ext-local]
exten => 101,hint,PJSIP/101&Custom:DND101,CustomPresence:101
exten => 102,hint,PJSIP/102&Custom:DND102,CustomPresence:102
exten => 103,hint,PJSIP/103&Custom:DND103,CustomPresence:103
exten => _10X,1,Dial(PJSIP/${EXTEN},60)
 same => n,Hangup()
exten => 500,1,Answer()
 same => n,Queue(sales,t,,,300)
 same => n,Hangup()
exten => 700,1,Park()

[from-internal]
include => ext-local

[pstn-in]
exten => _X.,1,Goto(ext-local,${EXTEN},1)
"""

QUEUES = """[general]
persistentmembers = no

[sales]
strategy = ringall
timeout = 60
retry = 1
wrapuptime = 0
ringinuse = no
joinempty = yes
leavewhenempty = no
member => PJSIP/102,0,Anna,PJSIP/102
member => PJSIP/103,0,Boris,PJSIP/103
"""

PARKING = """[general]

[default]
parkext => 700
parkpos => 701-720
context => parkedcalls
parkingtime => 600
comebacktoorigin = no
comebackcontext = ext-local
"""


class PanelBed:
    """Asterisk + phones. `start()`, then `caller(dest, num, name)` rings dest from outside."""

    def __init__(self, workdir: Path, phones: List[str] = PHONES):
        self.dir = Path(workdir)
        self.sip_port = free_port()
        self.asterisk = Asterisk(self.dir / "asterisk")
        self.phone_ids = list(phones)
        self.phones: Dict[str, Baresip] = {}

    @staticmethod
    def available() -> bool:
        return bool(shutil.which(BARESIP))

    def start(self, extra_manager: str = "") -> "PanelBed":
        a = self.asterisk.setup()
        a.write_etc("pjsip.conf", pjsip_conf(self.sip_port, self.phone_ids))
        a.write_etc("queues.conf", QUEUES)
        a.write_etc("res_parking.conf", PARKING)
        conf = a.etc_dir / "manager.conf"
        # every event carries Timestamp, so a replay of a recording has the times of the real run
        conf.write_text(conf.read_text().replace("[general]\n", "[general]\ntimestampevents = yes\n", 1))
        if extra_manager:
            with open(a.etc_dir / "manager.conf", "a") as f:
                f.write("\n" + extra_manager)
        a.add_test_dialplan("panel", DIALPLAN, reload=False)
        a.start()
        for u in self.phone_ids:
            self.phones[u] = Baresip(self.dir / f"phone{u}", self.sip_port, u, f"{SECRET}-{u}").start()
        for attempt in range(3):
            missing = self._wait_registered(15)
            if not missing:
                break
            for u in missing:       # a lost first REGISTER or a taken port: start that phone again
                self.phones[u].stop()
                self.phones[u] = Baresip(self.dir / f"phone{u}-{attempt}", self.sip_port, u, f"{SECRET}-{u}").start()
        else:
            raise RuntimeError("phones did not register:\n" + a.cli("pjsip show contacts"))
        for u in self.phone_ids:
            a.cli(f"devstate change Custom:DND{u} NOT_INUSE")
        return self

    def _wait_registered(self, seconds: float) -> List[str]:
        deadline = time.monotonic() + seconds
        while True:
            out = self.asterisk.cli("pjsip show contacts")
            missing = [u for u in self.phone_ids if f"{u}/sip:" not in out]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.3)

    def cli(self, command: str) -> str:
        return self.asterisk.cli(command)

    def caller(self, dest: str, num: str, name: str, seconds: int = 300) -> None:
        """An outside caller (num, name) calling dest; it waits up to `seconds` once connected."""
        self.admin("Originate", Channel=f"Local/{dest}@pstn-in", Application="Wait", Data=str(seconds),
                   CallerID=f'"{name}" <{num}>', Async="true")

    def admin(self, action: str, **fields):
        """One action as the testbed's all-classes admin (the test drives calls with it, never the panel)."""
        a = self.asterisk
        with AmiClient("127.0.0.1", a.ami_port, a.ami_user, a.ami_secret, timeout=10) as ami:
            return ami.action(action, **fields)

    def channel_of(self, device: str) -> str:
        """The name of the live channel of a device (e.g. PJSIP/101), from `core show channels concise`."""
        for line in self.cli("core show channels concise").splitlines():
            name = line.split("!", 1)[0]
            if name.startswith(device + "-"):
                return name
        raise LookupError(f"no channel of {device}")

    def stop(self) -> None:
        for p in self.phones.values():
            try:
                p.stop()
            except Exception:
                pass
        self.asterisk.stop()


def reader_block(secret: str) -> str:
    """The panel's read-only AMI user exactly as shipped (manager/asterisk-kit-panel.conf)."""
    from testbed.asterisk import REPO
    text = (REPO / "manager/asterisk-kit-panel.conf").read_text()
    return text.replace("CHANGE-ME-long-random", secret)
