"""Hand-over cost per number as the list grows: it must stay flat from 1 000 to 200 000 numbers.

For each list size and batch size (bundle) the kit's whole hand-over loop runs (choose the next batch,
render + line check, write in spool/tmp, one sync, rename into spool/outgoing, store update), with no
Asterisk picking the files up (the in-progress count is switched off, timeout = 0). The baseline, in the
same run on the same disk, does only the file system's part in the same batches: create + write, one
sync, rename, fsync of the folder. The kit's share is the difference.

    .venv/bin/python benchmarks/dialer_queue.py [SIZES] [BUNDLES] [DIR]
    e.g. benchmarks/dialer_queue.py 1000,10000,50000,200000 10,100 /var/tmp   (the defaults)

DIR should be on the disk the real spool is on. os.sync() per batch dominates on a busy disk: it is in
both figures, so the kit's share stays readable.
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
from asterisk_kit.dialer.runner import Runner, _RunState

TEXT = "x" * 300      # a call file is about 300 bytes


def bare(d: Path, n: int, bundle: int) -> tuple:
    """The file system's part alone, batch by batch as the kit does it."""
    tmp, out = d / "bare-tmp", d / "bare-out"
    tmp.mkdir()
    out.mkdir()
    t, c = time.perf_counter(), time.process_time()
    for start in range(0, n, bundle):
        names = [f"f{i}.call" for i in range(start, min(n, start + bundle))]
        for name in names:
            with open(tmp / name, "w") as f:
                f.write(TEXT)
        os.sync()
        for name in names:
            os.rename(tmp / name, out / name)
        fd = os.open(out, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    took, cpu = time.perf_counter() - t, time.process_time() - c
    shutil.rmtree(tmp)
    shutil.rmtree(out)
    return took, cpu


def kit(d: Path, n: int, bundle: int) -> tuple:
    (d / "spool" / "outgoing").mkdir(parents=True)
    cfg = parse_text(f"[general]\ndata_dir = {d}/data\n[asterisk]\nami_user = a\nami_secret = b\n"
                     f"spool_dir = {d}/spool\nrun_user =\n[dialer]\nbundle = {bundle}\ntimeout = 0\n"
                     f"max_in_progress = 1000\n", d / "kit.ini")
    conn = store.connect(cfg)
    store.upsert_phones(conn, [Entry(f"89{i:09d}", str(i % 10) if i % 3 == 0 else "") for i in range(n)])
    run_id = store.create_run(conn, "manual", "2026-01-01")
    log = logging.getLogger("bench")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    runner = Runner(cfg, conn, log)
    runner.in_progress.count = lambda run_id=None, in_run=None: (0, 0)     # nobody picks the files up here
    st = _RunState(conn, store.run(conn, run_id))
    t, c = time.perf_counter(), time.process_time()
    for _ in range(-(-n // bundle)):                # one batch per step, as the run's steps hand them over
        st.next_batch = 0.0
        runner._hand_over(st)
    took, cpu = time.perf_counter() - t, time.process_time() - c
    files = sum(1 for _ in os.scandir(d / "spool" / "outgoing"))
    assert files == n, files
    conn.close()
    shutil.rmtree(d / "spool")
    shutil.rmtree(d / "data")
    return took, cpu


def main() -> None:
    sizes = [int(x) for x in (sys.argv[1] if len(sys.argv) > 1 else "1000,10000,50000,200000").split(",")]
    bundles = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "10,100").split(",")]
    base = sys.argv[3] if len(sys.argv) > 3 else "/var/tmp"
    print(f"hand-over cost per number, files in {base} (µs per number; wall clock, and CPU time of this process,")
    print("which leaves out the waits for os.sync() that a busy machine makes noisy)")
    print(f"{'bundle':>6} {'numbers':>8} {'kit':>7} {'bare fs':>8} {'share':>7} {'ratio':>6} | "
          f"{'kit CPU':>8} {'bare CPU':>8} {'share':>7} {'ratio':>6}")
    for bundle in bundles:
        for n in sizes:
            with tempfile.TemporaryDirectory(dir=base) as d:
                t_bare, c_bare = bare(Path(d), n, bundle)
                t_kit, c_kit = kit(Path(d), n, bundle)
            per = 1e6 / n
            print(f"{bundle:>6} {n:>8} {t_kit * per:>7.0f} {t_bare * per:>8.0f} {(t_kit - t_bare) * per:>7.0f} "
                  f"{t_kit / t_bare:>6.2f} | {c_kit * per:>8.0f} {c_bare * per:>8.0f} {(c_kit - c_bare) * per:>7.0f} "
                  f"{c_kit / c_bare:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
