"""A small PBX for the panel's actions: a private Asterisk with PJSIP endpoints 101-103 (baresip
phones), an app_queue queue, the kit's originate context, the panel's AMI user exactly as shipped in
manager/asterisk-kit-panel-actions.conf, and a kit config pointing at it. Used by tests/test_panel_actions.py
and benchmarks/panel_actions.py."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Dict, List

from asterisk_kit.ami import AmiClient
from testbed.asterisk import REPO, Asterisk, free_port
from testbed.baresip import Baresip

PANEL_USER = "asterisk-kit-panel-actions"
PANEL_SECRET = "panel-test-secret"
EXTENS = ("101", "102", "103")
DIAL_CONTEXT = "panel-dial"


def pjsip_conf(sip_port: int, users) -> str:
    out = f"[transport-udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:{sip_port}\n"
    for u in users:
        out += f"""
[{u}]
type = endpoint
context = {DIAL_CONTEXT}
disallow = all
allow = ulaw,alaw
auth = {u}
aors = {u}

[{u}]
type = auth
auth_type = userpass
username = {u}
password = sip-secret-{u}

[{u}]
type = aor
max_contacts = 1
"""
    return out


def panel_ami_block(secret: str = PANEL_SECRET) -> str:
    """manager/asterisk-kit-panel-actions.conf as shipped, with a test secret."""
    text = (REPO / "manager/asterisk-kit-panel-actions.conf").read_text()
    assert "CHANGE-ME-long-random" in text
    return text.replace("CHANGE-ME-long-random", secret)


def kit_config(path: Path, a: Asterisk, blf: str = "") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    cfg = path / "kit.ini"
    cfg.write_text(f"""[general]
data_dir = {path}/data
[log]
dir = {path}/log
level = DEBUG
[asterisk]
ami_host = 127.0.0.1
ami_port = {a.ami_port}
ami_user = {a.ami_user}
ami_secret = {a.ami_secret}
spool_dir = {a.spool_dir}
etc_dir = {a.etc_dir}
run_user =
[blf]
groups = Sales: 101-102; Support: 103
action_ami_user = {PANEL_USER}
action_ami_secret = {PANEL_SECRET}
phone_channel = PJSIP/{{exten}}
dial_context = {DIAL_CONTEXT}
queue_interface = PJSIP/{{exten}}
{blf}
""")
    return cfg


class Pbx:
    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.sip_port = free_port()
        self.a = Asterisk(self.dir / "ast").setup()
        self.phones: Dict[str, Baresip] = {}

    def start(self) -> "Pbx":
        a = self.a
        a.write_etc("pjsip.conf", pjsip_conf(self.sip_port, EXTENS))
        a.write_etc("queues.conf", "[general]\n[support]\nstrategy = ringall\nmember => PJSIP/101\n")
        with open(a.etc_dir / "manager.conf", "a") as f:
            f.write("\n" + panel_ami_block())
        a.add_test_dialplan("panel", f"[{DIAL_CONTEXT}]\nexten => _1XX,1,Dial(PJSIP/${{EXTEN}},30)\n"
                                     " same => n,Hangup()\nexten => 600,1,Answer()\n same => n,Wait(60)\n",
                            reload=False)
        a.start()
        return self

    def install_kit_dialplan(self, cfg: Path) -> None:
        """The kit's rendered dialplan (its originate context), as `asterisk-kit install` writes it."""
        from asterisk_kit.config import load
        from asterisk_kit.install import render_dialplan
        self.a.add_test_dialplan("kit", render_dialplan(load(str(cfg))))

    def start_phones(self) -> None:
        # One at a time: baresip binds UDP, TCP and TLS on ports of its own choosing, so a port picked
        # for the next phone before the previous one bound its sockets could collide.
        for x in EXTENS:
            self.phones[x] = Baresip(self.dir / f"phone{x}", self.sip_port, x, f"sip-secret-{x}").start()
            deadline = time.monotonic() + 30
            while not re.search(rf"Contact:\s+{x}/sip:", self.a.cli("pjsip show contacts")):
                if time.monotonic() > deadline:
                    raise AssertionError(f"phone {x} did not register:\n{self.phones[x].output()[-1500:]}")
                time.sleep(0.2)

    def channels(self) -> List[dict]:
        with AmiClient("127.0.0.1", self.a.ami_port, self.a.ami_user, self.a.ami_secret) as ami:
            return ami.list_action("CoreShowChannels")[1]

    def channels_of(self, exten: str, state: str = "") -> List[dict]:
        return [c for c in self.channels() if c.get("Channel", "").startswith(f"PJSIP/{exten}-")
                and (not state or c.get("ChannelStateDesc") == state)]

    def hangup_all(self) -> None:
        self.a.cli("channel request hangup all")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.channels():
            time.sleep(0.2)

    def panel_logins(self) -> int:
        """How many times the panel's AMI user logged in (Asterisk's own log, verbose 2)."""
        return self.a.messages().count(f"Manager '{PANEL_USER}' logged on")

    def stop(self) -> None:
        for p in self.phones.values():
            if p.proc:
                p.stop()
        self.a.stop()
