"""BLF test helpers: the least-privilege AMI user from docs/blf.md, hints, a running daemon."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from testbed.asterisk import REPO, Asterisk
from testbed.browser import wait_for
from testbed.kitcli import BIN

BLF_USER = "asterisk-kit-blf"


def ami_user_snippet(secret: str) -> str:
    """The manager.conf block exactly as docs/blf.md ships it, with a test secret."""
    doc = (REPO / "docs/blf.md").read_text()
    m = re.search(r"```(?:ini|conf)\n(\[asterisk-kit-blf\].*?)```", doc, re.S)
    assert m, "docs/blf.md lost its manager_custom.conf example"
    return m.group(1).replace("CHANGE-ME-long-random", secret)


def add_blf_ami_user(a: Asterisk, secret: str = "blf-test-secret") -> str:
    """Adds the BLF user (docs/blf.md's block) once per Asterisk; returns the secret it has, which is
    another test's when that one added the same user first (e.g. test_ami's shipped blocks)."""
    conf = a.etc_dir / "manager.conf"
    text = conf.read_text()
    if f"[{BLF_USER}]" not in text:
        conf.write_text(text + "\n" + ami_user_snippet(secret))
        if a.running():
            a.cli("manager reload")
        return secret
    block = text.split(f"[{BLF_USER}]", 1)[1].split("\n[", 1)[0]
    m = re.search(r"^secret\s*=\s*(\S+)", block, re.M)
    assert m, f"[{BLF_USER}] in {conf} has no secret"
    return m.group(1)


def hints(context: str, extens, prefix: str = "Custom:", presence: bool = False) -> str:
    pres = (lambda x: f",CustomPresence:{x}") if presence else (lambda x: "")
    return f"[{context}]\n" + "".join(f"exten => {x},hint,{prefix}{x}{pres(x)}\n" for x in extens)


def blf_config(path: Path, a: Asterisk, mc_server: str, secret: str, blf: str = "", extra: str = "") -> Path:
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
ami_user = {BLF_USER}
ami_secret = {secret}
ami_timeout = 3
spool_dir = {a.spool_dir}
etc_dir = {a.etc_dir}
run_user =
[memcached]
servers = {mc_server}
[blf]
heartbeat_seconds = 0.5
stale_seconds = 3
ping_seconds = 1
reconnect_max_seconds = 2
{blf}
{extra}""")
    return cfg


class Daemon:
    def __init__(self, cfg: Path):
        self.cfg = cfg
        self.out = cfg.parent / f"blf-daemon-{time.time_ns()}.out"
        self.proc = None

    def start(self) -> "Daemon":
        self.log = open(self.out, "wb")
        self.proc = subprocess.Popen([str(BIN), "--config", str(self.cfg), "blf", "run"], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=dict(os.environ))
        return self

    def output(self) -> str:
        logs = "".join(p.read_text(errors="replace") for p in sorted((self.cfg.parent / "log").glob("blf-*.log")))
        return self.out.read_text(errors="replace") + logs

    def hup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode


def cached(mc, key: str):
    raw = mc.get("asterisk-kit:" + key)
    return json.loads(raw) if raw is not None else None


def wait_state(mc, exten: str, state: str, timeout: float = 20):
    return wait_for(lambda: (cached(mc, f"blf:ext:{exten}") or {}).get("state") == state, timeout,
                    what=f"memcached blf:ext:{exten} = {state} (have {cached(mc, f'blf:ext:{exten}')})")


def ami_connections(a: Asterisk, user: str = BLF_USER) -> int:
    out = a.cli("manager show connected")
    # the CLI cuts user names to 15 characters
    return sum(1 for line in out.splitlines() if line.split()[:1] == [user[:15]])


class AmiDriver:
    """Another AMI login (the testbed's admin user, not the daemon's) that sends `devstate change`
    commands in bulk: written without waiting, the answers drained by a thread."""

    def __init__(self, a: Asterisk):
        import socket
        import threading
        self.sock = socket.create_connection(("127.0.0.1", a.ami_port), timeout=10)
        self.sock.recv(100)
        self.sock.sendall(f"Action: Login\r\nUsername: {a.ami_user}\r\nSecret: {a.ami_secret}\r\n"
                          "Events: off\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self.sock.recv(4096)
        assert b"Success" in buf, buf
        self.n = 0
        self.answers = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    return
                with self._lock:
                    self.answers += data.count(b"Response: ")
        except OSError:
            return

    def devstate(self, changes) -> None:
        """CHANGES: [(exten, DEVSTATE)], e.g. ("201", "INUSE"), sent as one write."""
        out = []
        for x, st in changes:
            self.n += 1
            out.append(f"Action: Command\r\nActionID: d{self.n}\r\nCommand: devstate change Custom:{x} {st}\r\n\r\n")
        self.sock.sendall("".join(out).encode())

    def wait_answered(self, timeout: float = 60) -> None:
        wait_for(lambda: self.answers >= self.n, timeout, what=f"AMI answers ({self.answers} of {self.n})")

    def close(self) -> None:
        try:
            self.sock.sendall(b"Action: Logoff\r\n\r\n")
        except OSError:
            pass
        self.sock.close()


class SseViewer:
    """One /blf/events stream read by a thread, applied like the page does: `board` is what the
    page would show, `history[exten]` every state it was shown in, in order."""

    def __init__(self, url: str, cookies=None):
        import threading

        import requests
        self.board: dict = {}
        self.history: dict = {}
        self.stale = None
        self.seqs: list = []
        self.snapshots = 0
        self.error = None
        self.resp = requests.get(url + "/blf/events", stream=True, timeout=60, cookies=cookies,
                                 headers={"Accept": "text/event-stream"})
        assert self.resp.status_code == 200, self.resp.status_code
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        buf = b""
        try:
            while True:
                data = self.resp.raw.read1(1 << 16)
                if not data:
                    return
                buf += data
                *events, buf = buf.split(b"\n\n")
                for ev in events:
                    self._event(ev)
        except Exception as e:  # noqa: BLE001 - closed by the test, or a real failure the test reports
            self.error = e

    def _event(self, ev: bytes) -> None:
        name, data = "", None
        for line in ev.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = json.loads(line[6:])
        if data is None:
            return
        self.seqs.append(data["seq"])
        self.stale = data["stale"]
        if name == "snapshot":
            self.snapshots += 1
            self.board = {}
            items = data["extensions"]
        else:
            items = data["changed"]
            for x in data["removed"]:
                self.board.pop(x, None)
        for e in items:
            self.board[e["exten"]] = e
            h = self.history.setdefault(e["exten"], [])
            if not h or h[-1] != e["state"]:
                h.append(e["state"])

    def states(self) -> dict:
        return {x: e["state"] for x, e in list(self.board.items())}

    def close(self) -> None:
        self.resp.close()
