"""NiMbox hangup hook under bursts: 1, 30 and 100 calls hanging up at the same instant, through
classic AGI and through `asterisk-kit fastagi`, on a private testbed Asterisk with the fake NiMbox.

For each burst: calls delivered (in NiMbox or in the kit's outbox, out of the burst), the channel
teardown held by the kit's hangup handler (p50 / p95 / max), from the stamp handlers around it
(testbed/nimbox.py), and hangup -> NiMbox record for the calls NiMbox got at once.
The bare baseline, measured in the same run, is the same burst with
a hangup handler that runs an AGI doing nothing (classic: /bin/true as the AGI script; FastAGI: a
bare stdlib server that reads the AGI headers and closes), so the ratio shows what the kit adds.

    .venv/bin/python benchmarks/nimbox_hook.py [BURSTS] [DIR] [--only classic|fastagi]

BURSTS: comma-separated, default 1,30,100.
"""
from __future__ import annotations

import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.asterisk import Asterisk, free_port  # noqa: E402
from testbed.fakes.nimbox import FakeNimbox  # noqa: E402
from testbed.nimbox import DIALPLAN, hangup_burst, nimbox_config  # noqa: E402


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def figures(held):
    ms = [h * 1000 for h in held]
    return f"p50 {statistics.median(ms):5.0f} ms, p95 {pct(ms, 95):5.0f} ms, max {max(ms):5.0f} ms"


class BareFastAgi(socketserver.ThreadingTCPServer):
    """The baseline FastAGI server: read the headers, close."""
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024


class _Bare(socketserver.StreamRequestHandler):
    def handle(self):
        while self.rfile.readline(8192).strip():
            pass


def baseline_dialplan(fastagi_port: int) -> str:
    """nimbox-hangup replaced by a hangup handler whose AGI does nothing (same stamps around it)."""
    return (DIALPLAN.replace("Gosub(nimbox-attach,s,1)", "Set(CHANNEL(hangup_handler_push)=kit-bench-bare,s,1)")
            + "\n[kit-bench-bare]\nexten => s,1,Set(AGISIGHUP=no)\n"
            + (f" same => n,AGI(agi://127.0.0.1:{fastagi_port}/bare)\n" if fastagi_port
               else " same => n,AGI(/bin/true)\n")
            + " same => n,Return()\n")


def main() -> None:
    argv = sys.argv[1:]
    only = None
    if "--only" in argv:
        i = argv.index("--only")
        only = argv[i + 1]
        del argv[i:i + 2]
    bursts = [int(x) for x in (argv[0] if argv else "1,30,100").split(",")]
    base = argv[1] if len(argv) > 1 else "/var/tmp"
    paths = [p for p in ("classic", "fastagi") if only in (None, p)]
    print(f"NiMbox hook, simultaneous hangups (hook_timeout 1 s); bursts {bursts}")
    for path in paths:
        for n in bursts:
            baseline = run_one(base, path, n, True)
            kit = run_one(base, path, n, False)
            if baseline and kit:
                print(f"{'':27s}ratio kit/bare: p50 x{statistics.median(kit) / statistics.median(baseline):.1f}, "
                      f"p95 x{pct(kit, 95) / pct(baseline, 95):.1f}")


def run_one(base: str, path: str, n: int, bare: bool):
    with tempfile.TemporaryDirectory(dir=base) as d:
        d = Path(d)
        a = Asterisk(d / "asterisk").setup()
        bare_server = None
        port = free_port()
        if bare:
            bare_server = BareFastAgi(("127.0.0.1", port), _Bare)
            threading.Thread(target=bare_server.serve_forever, daemon=True).start()
            a.add_test_dialplan("nimbox", baseline_dialplan(port if path == "fastagi" else 0), reload=False)
        else:
            a.add_test_dialplan("nimbox", DIALPLAN, reload=False)
        a.start()
        fake = FakeNimbox().start()
        server = None
        try:
            extra = {"fastagi": f"127.0.0.1:{port}"} if path == "fastagi" and not bare else {}
            cfg = nimbox_config(d, a, fake.url, hook_timeout="1", **extra)
            if extra:
                server = subprocess.Popen([sys.executable, "-m", "asterisk_kit.cli", "--config", str(cfg), "fastagi",
                                           "--listen", extra["fastagi"]], stdout=subprocess.PIPE, text=True)
                server.stdout.readline()
            subprocess.run([sys.executable, "-m", "asterisk_kit.cli", "--config", str(cfg), "install",
                            "--asterisk-etc", str(a.etc_dir), "--no-initd", "--no-cron", "--reload"],
                           check=True, capture_output=True)
            r = hangup_burst(a, fake, cfg, n, 5000, timeout=120 if bare else 300, deliver=not bare)
            label = f"{'FastAGI' if path == 'fastagi' else 'classic AGI':11s} {n:3d} at once"
            if bare:
                print(f"{label}  bare AGI (baseline): teardown held {figures(r['held'])} ({len(r['ended'])} ended)")
                return r["held"]
            else:
                delivered = len(set(r["callers"]) - r["lost"])
                print(f"{label}  kit hook:            teardown held {figures(r['held'])}; delivered {delivered}/{n} "
                      f"({len(r['in_nimbox'])} in NiMbox, {len(r['in_outbox'] - r['in_nimbox'])} only in the outbox), "
                      f"logged {len(r['logged'])}/{n}")
                if r["to_record"]:
                    print(f"{'':27s}hangup -> NiMbox record: {figures(r['to_record'])}")
            return r["held"]
        finally:
            if server:
                server.terminate()
                server.wait(10)
            if bare_server:
                bare_server.shutdown()
                bare_server.server_close()
            fake.stop()
            a.stop()


if __name__ == "__main__":
    main()
