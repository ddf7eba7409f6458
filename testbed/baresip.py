"""A real SIP phone for tests: Debian's baresip registering to a PJSIP endpoint on loopback.

No sound card: the audio source and player are one `aubridge` device (the phone hears itself),
which is enough for calls to be set up and held. Driven through stdin menu commands
(/dial, /hangup, /quit)."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional

from testbed.asterisk import free_port

BARESIP = shutil.which("baresip") or "/usr/bin/baresip"


def pjsip_conf(sip_port: int, user: str, password: str, context: str) -> str:
    return f"""[transport-udp]
type = transport
protocol = udp
bind = 127.0.0.1:{sip_port}

[{user}]
type = endpoint
context = {context}
disallow = all
allow = ulaw,alaw
auth = {user}
aors = {user}

[{user}]
type = auth
auth_type = userpass
username = {user}
password = {password}

[{user}]
type = aor
max_contacts = 1
"""


class Baresip:
    def __init__(self, workdir: Path, sip_port: int, user: str, password: str):
        self.dir = Path(workdir)
        self.sip_port, self.user, self.password = sip_port, user, password
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Baresip":
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config").write_text(f"""poll_method epoll
sip_listen 127.0.0.1:{free_port()}
module_path /usr/lib/baresip/modules
module stdio.so
module g711.so
module aubridge.so
module_app account.so
module_app menu.so
audio_player aubridge,loop
audio_source aubridge,loop
audio_alert aubridge,alert
""")
        (self.dir / "accounts").write_text(f"<sip:{self.user}@127.0.0.1:{self.sip_port};transport=udp>"
                                           f";auth_pass={self.password};regint=60\n")
        self.out = open(self.dir / "baresip.out", "wb")
        self.proc = subprocess.Popen([BARESIP, "-f", str(self.dir)], stdin=subprocess.PIPE, stdout=self.out,
                                     stderr=subprocess.STDOUT)
        return self

    def command(self, cmd: str) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write((cmd + "\n").encode())
        self.proc.stdin.flush()

    def output(self) -> str:
        return (self.dir / "baresip.out").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.command("/quit")
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        self.out.close()
        time.sleep(0)
