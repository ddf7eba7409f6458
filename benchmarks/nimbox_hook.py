"""Hangup hook wall time: from the channel's hangup to the record in (a fake) NiMbox, classic AGI.

A private testbed Asterisk and the fake NiMbox on 127.0.0.1; N calls placed one after the other
through the kit's dialplan (Gosub nimbox-attach). A stamp hangup handler runs just before the kit's
and one just after it (testbed/nimbox.py), so two figures per call:
  hangup -> record   the bar: p95 < 300 ms
  teardown held      how long the kit's handler kept the channel (the AGI's whole run)
Then the same with NiMbox hanging (hook_timeout 1 s): the teardown must stay near the timeout.

    .venv/bin/python benchmarks/nimbox_hook.py [N] [DIR] [--fastagi]

--fastagi: the same through `asterisk-kit fastagi` (no process start per call).
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.fakes.nimbox import FakeNimbox  # noqa: E402
from testbed.asterisk import Asterisk  # noqa: E402
from testbed.nimbox import DIALPLAN, nimbox_config, place_call, stamps  # noqa: E402


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def run_calls(a, fake, n, first_caller, wait_record=True):
    """One call at a time. Waits on the fake (in-process, cheap) rather than polling Asterisk, whose
    CLI processes would compete with the hook for the CPU and blur the figure."""
    for i in range(n):
        caller = str(first_caller + i)
        before = len(fake.records)
        place_call(a, f"8495{first_caller + i:06d}1", caller=caller)   # ends in 1: the callee talks 1 s
        deadline = time.monotonic() + 30
        if wait_record:
            while len(fake.records) <= before:
                if time.monotonic() > deadline:
                    raise SystemExit(f"call {caller}: no record")
                time.sleep(0.005)
        time.sleep(0.5 if wait_record else 0.3)
        while "end" not in stamps(a).get(caller, {}):
            if time.monotonic() > deadline:
                raise SystemExit(f"call {caller} did not finish")
            time.sleep(0.3)


def main() -> None:
    fast = "--fastagi" in sys.argv
    argv = [a for a in sys.argv[1:] if a != "--fastagi"]
    n = int(argv[0]) if argv else 40
    base = argv[1] if len(argv) > 1 else "/var/tmp"
    with tempfile.TemporaryDirectory(dir=base) as d:
        d = Path(d)
        a = Asterisk(d / "asterisk").setup()
        a.add_test_dialplan("nimbox", DIALPLAN, reload=False)
        a.start()
        fake = FakeNimbox().start()
        server = None
        try:
            extra = {}
            if fast:
                from testbed.asterisk import free_port
                extra["fastagi"] = f"127.0.0.1:{free_port()}"
            cfg = nimbox_config(d, a, fake.url, hook_timeout="1", **extra)
            if fast:
                server = subprocess.Popen([sys.executable, "-m", "asterisk_kit.cli", "--config", str(cfg), "fastagi",
                                           "--listen", extra["fastagi"]], stdout=subprocess.PIPE, text=True)
                server.stdout.readline()
            subprocess.run([sys.executable, "-m", "asterisk_kit.cli", "--config", str(cfg), "install",
                            "--asterisk-etc", str(a.etc_dir), "--no-initd", "--no-cron", "--reload"],
                           check=True, capture_output=True)
            run_calls(a, fake, n, 3000)
            st = stamps(a)
            by_src = {r["source"]: r["at"] for r in fake.records.values()}
            to_record = [(by_src[c] - s["begin"]) * 1000 for c, s in st.items() if c in by_src]
            held = [(s["end"] - s["begin"]) * 1000 for c, s in st.items() if c in by_src]
            print(f"calls: {len(to_record)} (sequential, one at a time), {'FastAGI' if fast else 'classic AGI'}")
            print(f"hangup -> NiMbox record: p50 {statistics.median(to_record):.0f} ms, p95 {pct(to_record, 95):.0f} ms, "
                  f"max {max(to_record):.0f} ms (target p95 < 300 ms)")
            print(f"teardown held by the hook: p50 {statistics.median(held):.0f} ms, p95 {pct(held, 95):.0f} ms")
            fake.mode, fake.hang_seconds = "hang", 5
            run_calls(a, fake, 5, 4000, wait_record=False)
            st = stamps(a)
            held_down = [(s["end"] - s["begin"]) * 1000 for c, s in st.items() if c.startswith("400")]
            print(f"NiMbox hanging, hook_timeout 1 s: teardown held p50 {statistics.median(held_down):.0f} ms, "
                  f"max {max(held_down):.0f} ms ({len(held_down)} calls, all kept in the outbox)")
        finally:
            if server:
                server.terminate()
                server.wait(10)
            fake.mode = "up"
            fake.stop()
            a.stop()


if __name__ == "__main__":
    main()
