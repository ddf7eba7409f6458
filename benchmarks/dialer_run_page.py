"""What one poll of a live run page costs on a run of N numbers (default 200 000): the reads behind
`/dialer/runs/<id>.json` (counts of the whole run, one page of 50 rows with comments, the page count),
for the first page, a page deep in the run and a search, next to a bare baseline in the same run:
`SELECT count(*)` plus 50 rows by the primary key with no join, no ordering and no aggregate.

    .venv/bin/python benchmarks/dialer_run_page.py [N] [DIR]
"""
from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path


def build(path: Path, n: int):
    from asterisk_kit import storage
    from asterisk_kit.dialer import runview, store
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER)")
    storage.migrate(conn, "dialer", store.MIGRATIONS)
    runview.prepare(conn)
    now = time.time()
    with storage.transaction(conn):
        conn.executemany("INSERT INTO dialer_phones (campaign_id, number, digit, comment, created, updated) "
                         "VALUES (1, ?, '', ?, ?, ?)",
                         ((f"8916{i:07d}", f"Клиент {i}", now + i, now) for i in range(n)))
    run_id = store.create_run(conn, "manual", "2026-12-01")
    rnd = random.Random(1)
    with storage.transaction(conn):     # a run half done: outcomes, calls in progress, numbers waiting
        conn.executemany("UPDATE dialer_calls SET state = ?, result = ?, attempts = 1, spooled = ?, finished = ? "
                         "WHERE run_id = ? AND seq = ?",
                         ((("done", rnd.choice(("answered", "busy", "no_answer")), now, now + 30, run_id, s)
                           if s <= n // 2 else ("spooled", None, now, None, run_id, s))
                          for s in range(1, n // 2 + 20)))
    return conn, run_id


def timed(fn, repeat: int = 20) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def main() -> None:
    from asterisk_kit.dialer import runview, store
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory(dir=sys.argv[2] if len(sys.argv) > 2 else None) as d:
        t = time.perf_counter()
        conn, run_id = build(Path(d) / "kit.sqlite", n)
        print(f"store with a run of {n} numbers built in {time.perf_counter() - t:.1f} s")
        run = store.run(conn, run_id)
        pages = max(1, n // runview.PAGE_SIZE)

        def poll(page: int, search: str = ""):
            runview.counts(conn, run_id)
            runview.count(conn, run, search)
            return runview.page(conn, run, search, (page - 1) * runview.PAGE_SIZE)

        def bare():
            conn.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ?", (run_id,)).fetchone()
            return conn.execute("SELECT * FROM dialer_calls WHERE run_id = ? LIMIT 50", (run_id,)).fetchall()

        base = timed(bare)
        print(f"bare count + 50 rows: {base:.1f} ms")
        for label, fn in (("poll, page 1", lambda: poll(1)), (f"poll, page {pages // 2}", lambda: poll(pages // 2)),
                          (f"poll, page {pages}", lambda: poll(pages)),
                          ("poll, search 'Клиент 12345'", lambda: poll(1, "Клиент 12345"))):
            ms = timed(fn, 5)
            print(f"{label}: {ms:.1f} ms ({ms / base:.1f}x the bare reads)")


if __name__ == "__main__":
    main()
