"""BLF latency: device state change in Asterisk -> the change arriving at SSE viewers.

Real parts only: a private Asterisk 22 (testbed) with 500 hints in ext-local, a private memcached,
`asterisk-kit blf run` and `asterisk-kit web` as subprocesses, 100 concurrent Server-Sent Events
viewers (plain sockets in one selector thread, what a browser's EventSource does on the wire).
Each round changes one random extension through AMI (`Setvar DEVICE_STATE(Custom:X)`, another AMI
login than the daemon's) and times until every viewer has received that change. Target: p95 < 100 ms.

    .venv/bin/python benchmarks/blf_latency.py [ROUNDS] [VIEWERS] [EXTENSIONS]
"""
from __future__ import annotations

import json
import os
import random
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.asterisk import Asterisk  # noqa: E402
from testbed.blf import Daemon, add_blf_ami_user, ami_connections, blf_config, hints  # noqa: E402
from testbed.memcached import Memcached  # noqa: E402
from testbed.webserver import WebServer  # noqa: E402


class Viewers(threading.Thread):
    """N SSE connections read by one thread; records when each sees (exten, state)."""

    def __init__(self, url_host: str, port: int, n: int):
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        self.bufs = {}
        self.want = None            # (exten, state)
        self.seen = {}              # socket fileno -> monotonic time
        self.lock = threading.Lock()
        self.ready = 0
        for _ in range(n):
            s = socket.create_connection((url_host, port))
            s.sendall(b"GET /blf/events HTTP/1.0\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.bufs[s.fileno()] = b""

    def run(self):
        while True:
            for key, _ in self.sel.select(1):
                s = key.fileobj
                data = s.recv(1 << 20)
                if not data:
                    raise SystemExit(f"viewer {s.fileno()} closed")
                now = time.monotonic()
                buf = self.bufs[s.fileno()] + data
                *events, rest = buf.split(b"\n\n")
                self.bufs[s.fileno()] = rest
                for ev in events:
                    self._event(s.fileno(), ev, now)

    def _event(self, fd, ev: bytes, now: float):
        name, data = "", None
        for line in ev.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = json.loads(line[6:])
        if data is None:
            return
        if name == "snapshot":
            with self.lock:
                self.ready += 1
            items = data["extensions"]
        else:
            items = data["changed"]
        want = self.want
        if want and any(e["exten"] == want[0] and e["state"] == want[1] for e in items):
            with self.lock:
                self.seen.setdefault(fd, now)


def ami_login(port, user, secret):
    s = socket.create_connection(("127.0.0.1", port))
    s.recv(100)
    s.sendall(f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\nEvents: off\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    assert b"Success" in buf, buf
    return s


def cpu_seconds(pid: int) -> float:
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    n_viewers = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    n_ext = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    extens = [str(1000 + i) for i in range(n_ext)]
    with tempfile.TemporaryDirectory(prefix="blf-bench-") as d:
        d = Path(d)
        a = Asterisk(d / "ast").setup()
        secret = add_blf_ami_user(a)
        a.add_test_dialplan("blf", hints("ext-local", extens), reload=False)
        a.start()
        mc = Memcached().start()
        cfg = blf_config(d / "kit", a, mc.server, secret)
        # wall-screen access (no login) and the shipped defaults for the live path
        cfg.write_text(cfg.read_text().replace("[blf]\n", f"[blf]\nanonymous_networks = 127.0.0.1/32\n"
                                                           f"max_viewers = {n_viewers + 10}\n")
                       .replace("level = DEBUG", "level = INFO")
                       .replace("heartbeat_seconds = 0.5", "heartbeat_seconds = 1"))
        daemon = Daemon(cfg).start()
        web = WebServer(cfg).start()
        try:
            deadline = time.monotonic() + 60
            while b'"ami":"up"' not in (mc.client().get("asterisk-kit:blf:meta") or b""):
                assert time.monotonic() < deadline, daemon.output()
                time.sleep(0.2)
            viewers = Viewers("127.0.0.1", web.port, n_viewers)
            viewers.start()
            while viewers.ready < n_viewers:
                assert time.monotonic() < deadline, f"only {viewers.ready} viewers got their snapshot"
                time.sleep(0.1)
            drv = ami_login(a.ami_port, a.ami_user, a.ami_secret)
            cpu0 = {p: cpu_seconds(p) for p in (daemon.proc.pid, web.proc.pid)}
            t_start = time.monotonic()
            lat, missed = [], 0
            current = {x: "idle" for x in extens}
            for i in range(rounds):
                x = random.choice(extens)
                new = "inuse" if current[x] == "idle" else "idle"
                with viewers.lock:
                    viewers.seen = {}
                    viewers.want = (x, new)
                t0 = time.monotonic()
                drv.sendall(f"Action: Setvar\r\nActionID: b{i}\r\nVariable: DEVICE_STATE(Custom:{x})\r\n"
                            f"Value: {'INUSE' if new == 'inuse' else 'NOT_INUSE'}\r\n\r\n".encode())
                end = t0 + 5
                while len(viewers.seen) < n_viewers and time.monotonic() < end:
                    time.sleep(0.002)
                with viewers.lock:
                    got = list(viewers.seen.values())
                missed += n_viewers - len(got)
                lat += [(t - t0) * 1000 for t in got]
                current[x] = new
                time.sleep(random.uniform(0.05, 0.25))
            elapsed = time.monotonic() - t_start
            cpu = {p: cpu_seconds(p) - c for p, c in cpu0.items()}
            conns = ami_connections(a)
        finally:
            web.stop()
            daemon.stop()
            a.stop()
            mc.stop()
    print(f"BLF latency, state change (AMI Setvar) -> SSE viewer, {n_ext} extensions, {n_viewers} viewers, "
          f"{rounds} changes")
    print(f"  samples {len(lat)}, missed {missed}")
    print(f"  p50 {statistics.median(lat):.1f} ms, p95 {pct(lat, 95):.1f} ms, p99 {pct(lat, 99):.1f} ms, "
          f"max {max(lat):.1f} ms")
    print(f"  CPU over {elapsed:.1f} s: daemon {cpu[daemon.proc.pid]:.2f} s, web {cpu[web.proc.pid]:.2f} s")
    print(f"  AMI connections of the BLF user during the run: {conns}")
    print(f"  target p95 < 100 ms: {'met' if pct(lat, 95) < 100 and not missed else 'NOT met'}")


if __name__ == "__main__":
    main()
