"""Render and queue 10 000 call files (target: < 2 s on the 2-core test machine, pauses excluded).

Measures what a run does per number: Jinja render + line check, write + fsync in spool/tmp, rename
into spool/outgoing, and the store update per batch. No Asterisk picks the files up here, so the
in-progress count is switched off (the pacing waits are not part of the figure).

    .venv/bin/python benchmarks/dialer_queue.py [N] [DIR]

DIR (default /var/tmp) should be on the disk the real spool is on: /tmp on the test machine is
much slower at creating files than the rest of the same ext4 disk (25x in a quick check).
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from asterisk_kit.config import parse_text
from asterisk_kit.dialer import store
from asterisk_kit.dialer.numbers import Entry
from asterisk_kit.dialer.runner import Runner


def raw_files(d: Path, n: int) -> float:
    """What the file system alone costs for N call files (a busy disk makes this dominate)."""
    a, b = d / "raw-a", d / "raw-b"
    a.mkdir()
    b.mkdir()
    t = time.perf_counter()
    for i in range(n):
        with open(a / f"f{i}.call", "w") as f:
            f.write("x" * 300)
        os.rename(a / f"f{i}.call", b / f"f{i}.call")
    took = time.perf_counter() - t
    shutil.rmtree(a)
    shutil.rmtree(b)
    return took


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    base = sys.argv[2] if len(sys.argv) > 2 else "/var/tmp"
    with tempfile.TemporaryDirectory(dir=base) as d:
        d = Path(d)
        (d / "spool" / "outgoing").mkdir(parents=True)
        cfg = parse_text(f"[general]\ndata_dir = {d}/data\n[asterisk]\nami_user = a\nami_secret = b\n"
                         f"spool_dir = {d}/spool\nrun_user =\n[dialer]\nbundle = 1000\ntimeout = 0\n"
                         f"max_in_progress = 1000\nresult_wait_seconds = 30\n", d / "kit.ini")
        t_raw = raw_files(d, n)
        conn = store.connect(cfg)
        t = time.perf_counter()
        store.upsert_phones(conn, [Entry(f"89{i:09d}", str(i % 10) if i % 3 == 0 else "") for i in range(n)])
        t_list = time.perf_counter() - t
        run_id = store.create_run(conn, "manual", "2026-01-01")
        log = logging.getLogger("bench")
        log.addHandler(logging.NullHandler())
        log.propagate = False
        runner = Runner(cfg, conn, log)
        runner.in_progress.count = lambda run_id: 0      # nobody picks the files up here
        t, c = time.perf_counter(), time.process_time()
        runner._hand_over(run_id)
        t_queue, c_queue = time.perf_counter() - t, time.process_time() - c
        files = len(list((d / "spool" / "outgoing").iterdir()))
        assert files == n, files
        print(f"numbers: {n}")
        print(f"save list + create run: {t_list:.2f} s")
        print(f"render + queue (write, sync, rename, store): {t_queue:.2f} s  "
              f"({n / t_queue:.0f} files/s; target < 2 s for 10 000)")
        print(f"  CPU time of this process (user + kernel, file creation included): {c_queue:.2f} s")
        print(f"  baseline, same disk now: bare create + write + rename of {n} files in Python: {t_raw:.2f} s "
              f"(the kit's own share: {max(t_queue - t_raw, 0):.2f} s)")


if __name__ == "__main__":
    main()
