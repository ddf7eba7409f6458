"""Operator panel latency: a caller-ID (connected line) change in Asterisk -> the new number at SSE viewers.

Real parts only, as benchmarks/blf_latency.py: a private Asterisk 22 with EXTENSIONS hints in ext-local
(`Local/<x>@bench-line&Custom:<x>`, so a Local channel is a call on key x), a private memcached,
`asterisk-kit blf run` logged in as the panel's read-only user (manager/asterisk-kit-panel.conf) with
the call model on, `asterisk-kit web`, VIEWERS Server-Sent Events viewers (plain sockets in one
selector thread). CALLS keys hold a call; each round sets a new CONNECTEDLINE(num) on one of them
(another AMI login) and times until every viewer has received that key with the new number.
The baseline printed next to it is the state-only path of the same run (a `Custom:` device state
change on an idle key -> viewers). Target: p95 < 100 ms.

    .venv/bin/python benchmarks/panel_latency.py [ROUNDS] [VIEWERS] [EXTENSIONS] [CALLS]
"""
from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from blf_latency import Viewers, ami_login, cpu_seconds, pct  # noqa: E402

from testbed.asterisk import Asterisk  # noqa: E402
from testbed.blf import Daemon, ami_connections, blf_config  # noqa: E402
from testbed.memcached import Memcached  # noqa: E402
from testbed.panelbed import reader_block  # noqa: E402
from testbed.webserver import WebServer  # noqa: E402

READER, SECRET = "asterisk-kit-panel", "bench-panel-secret"


class CallViewers(Viewers):
    """Viewers matching either (exten, state) or (exten, number of its call)."""

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
        if not want:
            return
        for e in items:
            if e["exten"] != want[0]:
                continue
            if want[1] == "number" and any(c.get("number") == want[2] for c in e.get("calls", ())):
                with self.lock:
                    self.seen.setdefault(fd, now)
            elif want[1] == "state" and e["state"] == want[2]:
                with self.lock:
                    self.seen.setdefault(fd, now)


def measure(viewers, n_viewers, send, want, lat, missed_box):
    with viewers.lock:
        viewers.seen = {}
        viewers.want = want
    t0 = time.monotonic()
    send()
    end = t0 + 5
    while len(viewers.seen) < n_viewers and time.monotonic() < end:
        time.sleep(0.002)
    with viewers.lock:
        got = list(viewers.seen.values())
        viewers.want = None
    missed_box[0] += n_viewers - len(got)
    lat += [(t - t0) * 1000 for t in got]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    n_viewers = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    n_ext = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    n_calls = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    extens = [str(1000 + i) for i in range(n_ext)]
    with tempfile.TemporaryDirectory(prefix="panel-bench-") as d:
        d = Path(d)
        a = Asterisk(d / "ast").setup()
        conf = a.etc_dir / "manager.conf"
        conf.write_text(conf.read_text() + "\n" + reader_block(SECRET))
        plan = "[ext-local]\n" + "".join(f"exten => {x},hint,Local/{x}@bench-line&Custom:{x}\n" for x in extens)
        plan += "[bench-line]\nexten => _X.,1,Answer()\n same => n,Wait(3600)\n"
        a.add_test_dialplan("panel", plan, reload=False)
        a.start()
        mc = Memcached().start()
        cfg = blf_config(d / "kit", a, mc.server, SECRET, blf=f"ami_user = {READER}\nami_secret = {SECRET}\n")
        cfg.write_text(cfg.read_text().replace("[blf]\n", f"[blf]\nanonymous_networks = 127.0.0.1/32\n"
                                                           f"anonymous_see_numbers = yes\n"
                                                           f"max_viewers = {n_viewers + 10}\n")
                       .replace("level = DEBUG", "level = INFO")
                       .replace("heartbeat_seconds = 0.5", "heartbeat_seconds = 1"))
        drv = ami_login(a.ami_port, a.ami_user, a.ami_secret)
        busy = extens[:n_calls]
        for x in busy:
            drv.sendall(f"Action: Originate\r\nChannel: Local/{x}@bench-line\r\nApplication: Wait\r\nData: 3600\r\n"
                        f"CallerID: \"Bench {x}\" <7900{x}>\r\nAsync: true\r\n\r\n".encode())
        time.sleep(2)
        daemon = Daemon(cfg).start()
        web = WebServer(cfg).start()
        try:
            deadline = time.monotonic() + 60
            while b'"ami":"up"' not in (mc.client().get("asterisk-kit:blf:meta") or b""):
                assert time.monotonic() < deadline, daemon.output()
                time.sleep(0.2)
            viewers = CallViewers("127.0.0.1", web.port, n_viewers)
            viewers.start()
            while viewers.ready < n_viewers:
                assert time.monotonic() < deadline, f"only {viewers.ready} viewers got their snapshot"
                time.sleep(0.1)
            chans = {}
            out = a.cli("core show channels concise")
            for line in out.splitlines():
                name = line.split("!", 1)[0]
                if name.startswith("Local/") and name.endswith(";1"):
                    chans[name.split("/", 1)[1].split("@", 1)[0]] = name
            assert len(chans) >= n_calls, out
            cpu0 = {p: cpu_seconds(p) for p in (daemon.proc.pid, web.proc.pid)}
            t_start = time.monotonic()
            lat, base, missed, bmissed = [], [], [0], [0]
            current = {x: "idle" for x in extens[n_calls:]}
            for i in range(rounds):
                x = random.choice(busy)
                num = f"8{random.randrange(10**9, 10**10)}"
                wire = (f"Action: Setvar\r\nActionID: c{i}\r\nChannel: {chans[x]}\r\nVariable: CONNECTEDLINE(num)\r\n"
                        f"Value: {num}\r\n\r\n").encode()
                measure(viewers, n_viewers, lambda w=wire: drv.sendall(w), (x, "number", num), lat, missed)
                time.sleep(random.uniform(0.05, 0.2))
                y = random.choice(list(current))
                new = "inuse" if current[y] == "idle" else "idle"
                wire = (f"Action: Setvar\r\nActionID: s{i}\r\nVariable: DEVICE_STATE(Custom:{y})\r\n"
                        f"Value: {'INUSE' if new == 'inuse' else 'NOT_INUSE'}\r\n\r\n").encode()
                measure(viewers, n_viewers, lambda w=wire: drv.sendall(w), (y, "state", new), base, bmissed)
                current[y] = new
                time.sleep(random.uniform(0.05, 0.2))
            elapsed = time.monotonic() - t_start
            cpu = {p: cpu_seconds(p) - c for p, c in cpu0.items()}
            conns = ami_connections(a, READER)
        finally:
            web.stop()
            daemon.stop()
            a.stop()
            mc.stop()
    if not lat:
        raise SystemExit(f"no caller-ID change reached a viewer (missed {missed[0]})")
    print(f"Operator panel latency, {n_ext} keys ({n_calls} with a call), {n_viewers} viewers, {rounds} rounds")
    print(f"  caller-ID change -> viewer: samples {len(lat)}, missed {missed[0]}; p50 {statistics.median(lat):.1f} ms, "
          f"p95 {pct(lat, 95):.1f} ms, p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms")
    print(f"  baseline, state change -> viewer (same run): samples {len(base)}, missed {bmissed[0]}; "
          f"p50 {statistics.median(base):.1f} ms, p95 {pct(base, 95):.1f} ms; ratio p95 "
          f"{pct(lat, 95) / pct(base, 95):.2f}")
    print(f"  CPU over {elapsed:.1f} s ({2 * rounds} changes): daemon {cpu[daemon.proc.pid]:.2f} s, "
          f"web {cpu[web.proc.pid]:.2f} s")
    print(f"  AMI connections of the panel user during the run: {conns}")
    print(f"  target p95 < 100 ms: {'met' if pct(lat, 95) < 100 and not missed[0] else 'NOT met'}")


if __name__ == "__main__":
    main()
