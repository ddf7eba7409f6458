"""Replicator figures: throughput against a fake NiMbox with 20 ms latency per request, and memory
of a full sync over 1 000 000 CDR rows.

A private MariaDB (testbed/mariadb.py) with the FreePBX cdr table; rows made by the server
itself (INSERT ... SELECT from the sequence engine). Two parts:
  throughput  N new calls, 20 ms per request, [nimbox] concurrency C: calls/s
  memory      1 000 000 rows (two per call: 500 000 calls over ~290 days), the kit already holding
              99 % of them (the nightly full sync's usual case: it re-reads the year, sends the few
              it does not know); max RSS of the `asterisk-kit nimbox sync --full` process and time

    .venv/bin/python benchmarks/nimbox_sync.py [--calls 4000] [--concurrency 8] [--rows 1000000] [DIR]
"""
from __future__ import annotations

import argparse
import datetime as dt
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.fakes.nimbox import FakeNimbox  # noqa: E402
from testbed.mariadb import MariaDB  # noqa: E402
from testbed.nimbox import nimbox_config  # noqa: E402

KIT = Path(sys.executable).parent / "asterisk-kit"

FILL = """INSERT INTO cdr (calldate, src, dst, duration, billsec, disposition, recordingfile, linkedid, uniqueid,
                 sequence)
SELECT %s + INTERVAL seq * %s SECOND, CONCAT('1', LPAD(seq DIV 2 MOD 50, 2, '0')),
       IF(seq MOD 20 < 2, CONCAT('1', LPAD(seq MOD 100, 2, '0')), CONCAT('8495', LPAD(seq DIV 2, 7, '0'))),
       30 + seq MOD 200, 20 + seq MOD 150, 'ANSWERED',
       IF(seq MOD 4 < 2, CONCAT('out-8495', LPAD(seq DIV 2, 7, '0'), '-101-',
                             DATE_FORMAT(%s + INTERVAL seq * %s SECOND, '%%Y%%m%%d-%%H%%i%%s'), '-', seq, '.wav'), ''),
       CONCAT('17', seq DIV 2), CONCAT('17', seq), seq MOD 2
FROM seq_0_to_{last}"""


def fill(m: MariaDB, rows: int, start: dt.datetime, step: int) -> float:
    m.execute("TRUNCATE TABLE cdr", database="asteriskcdrdb")
    t = time.perf_counter()
    s = start.strftime("%Y-%m-%d %H:%M:%S")
    m.execute(FILL.format(last=rows - 1), (s, step, s, step), database="asteriskcdrdb")
    return time.perf_counter() - t


def run_sync(cfg: Path, *args: str):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M", str(KIT), "--config", str(cfg), "nimbox", "sync", *args],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t
    rss = [ln for ln in r.stderr.splitlines() if ln.startswith("maxrss_kb=")]
    if r.returncode != 0:
        print(r.stdout, r.stderr)
    return wall, int(rss[-1].split("=")[1]) if rss else before, r.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("dir", nargs="?", default="/var/tmp")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        d = Path(d)
        m = MariaDB(d / "mariadb").start().load_freepbx_schema()
        try:
            # ---- throughput: every call new, 20 ms per request ----
            fake = FakeNimbox(latency=0.02).start()
            now = dt.datetime.now().replace(microsecond=0)
            fill(m, a.calls * 2, now - dt.timedelta(hours=2), 1)
            (d / "t").mkdir()
            cfg = nimbox_config(d / "t", None, fake.url, mysql=m.mysql_section(), concurrency=str(a.concurrency),
                                incremental_hours="3")
            wall, rss, line = run_sync(cfg)
            n = len(fake.records)
            print(f"throughput: {n} calls created in {wall:.1f} s = {n / wall:.0f} calls/s "
                  f"(20 ms per request, concurrency {a.concurrency}, {fake.connections} connection(s); "
                  f"ideal {a.concurrency / 0.02:.0f}/s); max RSS {rss / 1024:.0f} MB")
            print("  " + line)
            fake.stop()

            # ---- memory: a full sync over many rows, 99 % already known ----
            fake = FakeNimbox(latency=0.02).start()
            (d / "m").mkdir()
            cfg = nimbox_config(d / "m", None, fake.url, mysql=m.mysql_section(), concurrency=str(a.concurrency),
                                full_days="360")
            step = max(1, int(290 * 86400 / a.rows))
            t_fill = fill(m, a.rows, now - dt.timedelta(days=295), step)
            print(f"memory: {a.rows} CDR rows made in {t_fill:.1f} s")
            t = time.perf_counter()
            known = preload(cfg, keep_out=100)
            print(f"  the kit's store preloaded with {known} confirmed calls in {time.perf_counter() - t:.0f} s")
            wall, rss, line = run_sync(cfg, "--full")
            print(f"  full sync: {wall:.1f} s, max RSS {rss / 1024:.0f} MB, {len(fake.records)} calls sent")
            print("  " + line)
            fake.stop()
        finally:
            m.stop()


def preload(cfg: Path, keep_out: int) -> int:
    """Record every call of the window as confirmed, except one in KEEP_OUT (sent by the sync)."""
    from asterisk_kit.config import load
    from asterisk_kit.nimbox import cdr, outbox
    from asterisk_kit.nimbox.call import CallBuilder
    from asterisk_kit.nimbox.sync import window
    c = load(str(cfg))
    b = CallBuilder(c)
    conn = outbox.connect(c)
    conn.execute("PRAGMA synchronous = OFF")
    since, until = window(c, True, None)
    db = cdr.connect(c)
    batch, n = [], 0
    for i, row in enumerate(cdr.calls(db, since, until, c["nimbox"]["min_destination_length"])):
        if i % keep_out == 0:
            continue
        batch.append((b.from_cdr(row), "created", ""))
        if len(batch) >= 20000:
            outbox.record(conn, batch, "sync")
            n += len(batch)
            batch = []
    outbox.record(conn, batch, "sync")
    db.close()
    return n + len(batch)


if __name__ == "__main__":
    main()
