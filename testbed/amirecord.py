"""Record real AMI byte streams from the testbed Asterisk for the protocol's replay tests.

`python -m testbed.amirecord tests/data/ami` starts a private Asterisk (testbed/asterisk.py), runs
each scenario over a raw socket and writes, per scenario, NAME.bin (every byte Asterisk sent, as
received) and NAME.json (the steps the client took and how many bytes it had received when it sent
each one, so a replay can issue them at the same point of the stream). Run once; the files are
committed (tests/data/ami/). Secrets are test secrets of the throw-away Asterisk.
"""
from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from asterisk_kit.amiproto import AmiProtocol, Pending
from testbed.asterisk import Asterisk

USERS = """
[rec-all]
secret = rec-all-secret
read = all
write = all

[rec-call]
secret = rec-call-secret
read = call
write = originate

[rec-none]
secret = rec-none-secret
read =
write =
"""

DIALPLAN = """[rec-cyr]
exten => s,1,Set(CALLERID(name)=Иван Петров)
 same => n,Set(CALLERID(num)=101)
 same => n,Wait(30)
 same => n,Hangup()

[rec-hints]
exten => 101,hint,Custom:rec101
exten => 102,hint,Custom:rec102
"""


class Recorder:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.proto = AmiProtocol()
        self.stream = bytearray()
        self.steps: List[Dict] = []

    def _read(self, until: float) -> None:
        self.sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        if not chunk:
            raise EOFError
        self.stream += chunk
        self.proto.receive(chunk)

    def banner(self) -> None:
        deadline = time.monotonic() + 5
        while self.proto.banner is None and time.monotonic() < deadline:
            self._read(deadline)

    def step(self, call: str, **args) -> Pending:
        p: Pending = getattr(self.proto, call)(**args)
        self.steps.append({"call": call, "args": args, "offset": len(self.stream)})
        self.sock.sendall(p.wire)
        deadline = time.monotonic() + 10
        while not p.done and time.monotonic() < deadline:
            try:
                self._read(deadline)
            except EOFError:
                break
        return p

    def linger(self, seconds: float) -> None:
        """Keep recording what Asterisk sends (events) for a while."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._read(deadline)
            except EOFError:
                return

    def save(self, out: Path, name: str, note: str) -> None:
        self.sock.close()
        (out / f"{name}.bin").write_bytes(bytes(self.stream))
        (out / f"{name}.json").write_text(json.dumps({"note": note, "steps": self.steps}, ensure_ascii=False,
                                                     indent=1) + "\n")
        print(f"{name}: {len(self.stream)} bytes, {len(self.steps)} steps")


def record(a: Asterisk, out: Path) -> None:
    def new() -> Recorder:
        r = Recorder(a.ami_port)
        r.banner()
        return r

    r = new()
    r.step("login", user="rec-all", secret="rec-all-secret")
    r.step("action", action="Ping")
    r.step("action", action="Logoff")
    r.linger(0.3)
    r.save(out, "login_ok", "banner, plain login accepted, Ping, Logoff")

    r = new()
    r.step("login", user="rec-all", secret="wrong-secret")
    r.linger(0.3)
    r.save(out, "login_refused", "plain login with a wrong secret")

    r = new()
    ch = r.step("challenge")
    assert ch.response is not None
    r.step("login_md5", user="rec-all", secret="rec-all-secret", challenge=ch.response["Challenge"])
    r.step("action", action="Ping")
    r.step("action", action="Logoff")
    r.linger(0.3)
    r.save(out, "login_md5", "md5 challenge login (secret rec-all-secret), Ping, Logoff")

    r = new()
    r.step("login", user="rec-all", secret="rec-all-secret")
    r.step("action", action="Originate", Channel="Local/s@rec-cyr", Application="Wait", Data="30", Async="true")
    time.sleep(1.5)
    r.step("list_action", action="CoreShowChannels")
    r.step("list_action", action="ExtensionStateList")
    r.step("action", action="Command", Command="dialplan reload")
    r.step("action", action="Logoff")
    r.linger(0.3)
    r.save(out, "lists", "CoreShowChannels with a Cyrillic CALLERID(name), ExtensionStateList, Command")
    a.cli("channel request hangup all")
    time.sleep(1)

    r = new()
    r.step("login", user="rec-call", secret="rec-call-secret", events=True)
    r.step("action", action="Originate", Channel="Local/s@rec-cyr", Application="Wait", Data="30", Async="true")
    r.linger(2.5)
    a.cli("channel request hangup all")
    r.linger(1.5)
    r.step("action", action="Logoff")
    r.save(out, "events", "events of class call with a Cyrillic caller name (NewCallerid), Originate's own events")

    r = new()
    r.step("login", user="rec-none", secret="rec-none-secret")
    r.step("action", action="Command", Command="dialplan reload")
    r.step("list_action", action="CoreShowChannels")
    r.step("list_action", action="ExtensionStateList")
    r.step("action", action="Ping")
    r.step("action", action="Logoff")
    r.linger(0.3)
    r.save(out, "refused", "a user without classes: Command, CoreShowChannels, ExtensionStateList refused; Ping ok")


def main(argv=None) -> int:
    out = Path((argv or sys.argv[1:] or ["tests/data/ami"])[0])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ami-record-") as tmp:
        a = Asterisk(Path(tmp)).setup()
        with open(a.etc_dir / "manager.conf", "a") as f:
            f.write(USERS)
        a.add_test_dialplan("rec", DIALPLAN, reload=False)
        a.start()
        try:
            record(a, out)
        finally:
            a.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
