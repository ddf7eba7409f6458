"""BLF cost per change: CPU of the daemon and of the web process per extension state change, at 500
and 2 000 extensions, the kit next to the previous design (whole snapshot rewritten and re-read per
change) measured in the same run; then memory of both over a soak of 10 000 changes.

Real parts only: a private Asterisk 22 (testbed) with 2 000 `Custom:` hints, a private memcached,
`asterisk-kit blf run` and `asterisk-kit web` as subprocesses, VIEWERS Server-Sent Events streams
read by one thread. Changes are `devstate change` commands sent through another AMI login in bulk
(BATCH commands every 50 ms), each a real change of one extension. CPU is read from /proc for the
whole window (first command to the last change seen in memcached, plus one second for the web
process to fan it out), so idle polling counts too. The previous design is the kit as of commit
BASELINE_COMMIT, extracted with `git archive` and run with the same config.

    .venv/bin/python benchmarks/blf_cost.py [CHANGES] [VIEWERS] [SOAK_CHANGES]
"""
from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.asterisk import Asterisk  # noqa: E402
from testbed.blf import AmiDriver, add_blf_ami_user, blf_config, hints  # noqa: E402
from testbed.panelbed import reader_block  # noqa: E402

PANEL_SECRET = "cost-panel-secret"
from testbed.memcached import Memcached  # noqa: E402
from testbed.webserver import WebServer  # noqa: E402

BASELINE_COMMIT = "35c911f"          # before the change ring
BATCH = 10                           # commands per 50 ms: 200 changes/s
EXTENS = [str(1000 + i) for i in range(2000)]


class Drain(threading.Thread):
    """N SSE streams read (and thrown away) by one thread, like N browsers would."""

    def __init__(self, port: int, n: int):
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        self.bytes = 0
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /blf/events HTTP/1.0\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)

    def run(self):
        while True:
            for key, _ in self.sel.select(1):
                data = key.fileobj.recv(1 << 20)
                if not data:
                    return
                self.bytes += len(data)

    def close(self):
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()


def cpu_seconds(pid: int) -> float:
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Proc:
    """`asterisk-kit ARGS` from this checkout, or from an extracted older tree (PYTHONPATH)."""

    def __init__(self, cfg: Path, args, tree: Path | None, out: Path):
        env = dict(os.environ)
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        self.log = open(out, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "asterisk_kit", "--config", str(cfg), *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(tree) if tree else None)
        self.pid = self.proc.pid

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def run_case(d: Path, a: Asterisk, secret: str, tree: Path | None, n_ext: int, changes: int, viewers: int,
             soak_every: int = 0):
    """Start memcached, daemon and web for N_EXT extensions, send CHANGES changes; returns figures."""
    mc = Memcached().start()
    label = "base" if tree else "kit"
    # the kit runs with the call model wired in ([blf] calls = yes, the default) and the panel's AMI user, so
    # it receives every event the model follows (DeviceStateChange too), not only ExtensionStatus
    panel = "" if tree else f"ami_user = asterisk-kit-panel\nami_secret = {PANEL_SECRET}\n"
    cfg = blf_config(d / f"{label}-{n_ext}", a, mc.server, secret,
                     blf=f"{panel}contexts = blf-cost\ninclude = 1000-{1000 + n_ext - 1}\n"
                         f"anonymous_networks = 127.0.0.1/32\nmax_viewers = {viewers + 10}\n")
    cfg.write_text(cfg.read_text().replace("level = DEBUG", "level = INFO")
                   .replace("heartbeat_seconds = 0.5", "heartbeat_seconds = 1")
                   .replace("stale_seconds = 3", "stale_seconds = 5"))
    daemon = Proc(cfg, ["blf", "run"], tree, cfg.parent / "daemon.out")
    web = WebServer(cfg)
    if tree is not None:        # the older web app from its own tree
        web.proc = None
    drain = None
    try:
        client = mc.client()
        deadline = time.monotonic() + 90
        prefix = "asterisk-kit:blf:ext:"
        last = f"{1000 + n_ext - 1}"
        while client.get(prefix + last) is None:
            assert time.monotonic() < deadline, "the daemon wrote no records"
            time.sleep(0.2)
        if tree is None:
            web.start()
            wproc = web.proc
        else:
            port = web.port
            wp = Proc(cfg, ["web", "--listen", "127.0.0.1", "--port", str(port)], tree, cfg.parent / "web.out")
            wproc = wp.proc
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
        drain = Drain(web.port, viewers)
        drain.start()
        time.sleep(2)
        drv = AmiDriver(a)
        state = {x: "NOT_INUSE" for x in EXTENS[:n_ext]}
        touched = set()
        cpu0 = (cpu_seconds(daemon.pid), cpu_seconds(wproc.pid))
        mem = [(0, rss_mb(daemon.pid), rss_mb(wproc.pid))]
        t0 = time.monotonic()
        sent = 0
        i = 0
        while sent < changes:
            batch = []
            for _ in range(min(BATCH, changes - sent)):
                x = EXTENS[(i * 7919) % n_ext]
                i += 1
                state[x] = "INUSE" if state[x] == "NOT_INUSE" else "NOT_INUSE"
                touched.add(x)
                batch.append((x, state[x]))
            drv.devstate(batch)
            sent += len(batch)
            if soak_every and sent % soak_every == 0:
                mem.append((sent, rss_mb(daemon.pid), rss_mb(wproc.pid)))
            time.sleep(max(0.0, t0 + sent / (BATCH * 20) - time.monotonic()))
        drv.wait_answered(120)
        want = {x: ("inuse" if state[x] == "INUSE" else "idle") for x in touched}
        deadline = time.monotonic() + 60
        while True:
            got = client.get_many([prefix + x for x in want])
            if all(f'"state":"{want[x]}"'.encode() in got.get(prefix + x, b"") for x in want):
                break
            assert time.monotonic() < deadline, "the daemon did not write every change"
            time.sleep(0.2)
        time.sleep(1)
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(daemon.pid) - cpu0[0], cpu_seconds(wproc.pid) - cpu0[1])
        if soak_every:
            mem.append((sent, rss_mb(daemon.pid), rss_mb(wproc.pid)))
        drv.close()
        return {"daemon_ms": cpu[0] / changes * 1000, "web_ms": cpu[1] / changes * 1000, "elapsed": elapsed,
                "mem": mem, "bytes": drain.bytes}
    finally:
        if drain:
            drain.close()
        if tree is None:
            web.stop()
        else:
            wp.stop()
        daemon.stop()
        mc.stop()


def main():
    changes = int(sys.argv[1]) if len(sys.argv) > 1 else 1200
    viewers = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    soak = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    with tempfile.TemporaryDirectory(prefix="blf-cost-") as d:
        d = Path(d)
        base = d / "baseline-tree"
        base.mkdir()
        subprocess.run(f"git -C {REPO} archive {BASELINE_COMMIT} asterisk_kit www | tar -x -C {base}",
                       shell=True, check=True)
        a = Asterisk(d / "ast").setup()
        secret = add_blf_ami_user(a)
        conf = a.etc_dir / "manager.conf"
        conf.write_text(conf.read_text() + "\n" + reader_block(PANEL_SECRET))
        a.add_test_dialplan("blf", hints("blf-cost", EXTENS), reload=False)
        a.start()
        try:
            rows = []
            for n in (500, 2000):
                kit = run_case(d, a, secret, None, n, changes, viewers)
                old = run_case(d, a, secret, base, n, changes, viewers)
                rows.append((n, kit, old))
            soaked = run_case(d, a, secret, None, 500, soak, viewers, soak_every=1000)
        finally:
            a.stop()
    print(f"BLF cost per change: {changes} changes at {BATCH * 20}/s (devstate change via AMI, bulk), "
          f"{viewers} SSE viewers; kit = call model wired in, panel AMI user; "
          f"previous design = commit {BASELINE_COMMIT}")
    print(f"  {'keys':>5}  {'daemon kit':>11} {'daemon old':>11} {'ratio':>6}   "
          f"{'web kit':>8} {'web old':>8} {'ratio':>6}")
    for n, kit, old in rows:
        print(f"  {n:>5}  {kit['daemon_ms']:>8.2f} ms {old['daemon_ms']:>8.2f} ms "
              f"{old['daemon_ms'] / kit['daemon_ms']:>5.1f}x"
              f"   {kit['web_ms']:>5.2f} ms {old['web_ms']:>5.2f} ms {old['web_ms'] / kit['web_ms']:>5.1f}x")
    ok = all(kit["daemon_ms"] <= 1 and kit["web_ms"] <= 1 for _, kit, _ in rows)
    print(f"  target daemon and web <= 1 ms per change at 500 and 2000 keys: {'met' if ok else 'NOT met'}")
    print(f"  soak: {soak} changes, 500 keys, {viewers} viewers, {soaked['elapsed']:.0f} s; RSS MB (daemon / web):")
    print("   " + ", ".join(f"{n}: {dm:.1f} / {wm:.1f}" for n, dm, wm in soaked["mem"]))
    print(f"   CPU per change over the soak: daemon {soaked['daemon_ms']:.2f} ms, web {soaked['web_ms']:.2f} ms")


if __name__ == "__main__":
    main()
