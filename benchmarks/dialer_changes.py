"""Cost of the API's change sequence on dialer_calls (two triggers bump `changed` on every insert and
update): a run's creation (one INSERT ... SELECT of N rows) and the runner's hand-over updates (batches
of 100 in a transaction each), with the triggers, next to the same store without them (the schema before
that migration) in the same run, alternating, best of 3 each.

    .venv/bin/python benchmarks/dialer_changes.py [N] [DIR]      (defaults: 100000 /var/tmp)
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from asterisk_kit import storage
from asterisk_kit.dialer import store
from asterisk_kit.dialer.numbers import Entry


def once(n: int, migrations, where: str):
    d = Path(tempfile.mkdtemp(dir=where))
    try:
        c = storage.connect(path=d / "x.sqlite")
        storage.migrate(c, "dialer", migrations)
        store.upsert_phones(c, [Entry(f"8{i:010d}") for i in range(n)])
        t = time.perf_counter()
        run_id = store.create_run(c, "manual", "day")
        create = time.perf_counter() - t
        nums = [f"8{i:010d}" for i in range(n)]
        t = time.perf_counter()
        for k in range(0, n, 100):
            with storage.transaction(c):
                c.executemany("UPDATE dialer_calls SET state = 'spooled', spooled = ?, batch = ?, attempts = 1 "
                              "WHERE run_id = ? AND number = ? AND state = 'pending'",
                              [(time.time(), k, run_id, x) for x in nums[k:k + 100]])
        update = time.perf_counter() - t
        c.close()
        return create, update
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    where = sys.argv[2] if len(sys.argv) > 2 else "/var/tmp"
    variants = {"bare (no triggers)": store.MIGRATIONS[:3], "kit (change triggers)": store.MIGRATIONS}
    best = {k: [float("inf"), float("inf")] for k in variants}
    for _ in range(3):
        for name, migs in variants.items():
            cr, up = once(n, migs, where)
            best[name] = [min(best[name][0], cr), min(best[name][1], up)]
    for name, (cr, up) in best.items():
        print(f"{name:24} create_run {cr / n * 1e6:6.1f} µs/row   hand-over updates {up / n * 1e6:6.1f} µs/row")
    (kc, ku), (bc, bu) = best["kit (change triggers)"], best["bare (no triggers)"]
    print(f"ratio kit/bare: create_run {kc / bc:.2f}x, updates {ku / bu:.2f}x (N = {n})")


if __name__ == "__main__":
    main()
