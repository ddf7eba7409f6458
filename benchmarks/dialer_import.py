"""Import of a 200 000-number Excel CSV in Windows-1251 (`number;digit;comment`, Cyrillic comments):
time and peak RSS of `asterisk-kit dialer import FILE` (a fresh list, then the same file again: all
updates), next to a bare baseline in the same run: a Python process that decodes the same file,
splits it with csv and inserts the rows into a SQLite table with a primary key on the same disk.

    .venv/bin/python benchmarks/dialer_import.py [N] [DIR]      (defaults: 200000 /var/tmp)
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KIT = Path(sys.executable).parent / "asterisk-kit"

BARE = r"""
import csv, io, sqlite3, sys
text = open(sys.argv[1], "rb").read().decode("cp1251")
db = sqlite3.connect(sys.argv[2])
db.execute("CREATE TABLE IF NOT EXISTS p (number TEXT PRIMARY KEY, digit TEXT, comment TEXT)")
rows = [r + ["", ""] for r in csv.reader(io.StringIO(text), delimiter=";")][1:]
with db:
    db.executemany("INSERT OR REPLACE INTO p VALUES (?, ?, ?)", [r[:3] for r in rows])
print(len(rows), "rows")
"""


def csv_file(path: Path, n: int) -> None:
    lines = ["Номер;Цифра;Комментарий"]
    lines += [f"89{i:09d};{i % 10 if i % 3 == 0 else ''};Клиент №{i} «Ёлка», договор {i * 7}" for i in range(n)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1251"))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    base = sys.argv[2] if len(sys.argv) > 2 else "/var/tmp"
    with tempfile.TemporaryDirectory(dir=base) as d:
        d = Path(d)
        f = d / "clients.csv"
        csv_file(f, n)
        cfg = d / "kit.ini"
        cfg.write_text(f"[general]\ndata_dir = {d}/data\n[log]\ndir = {d}/log\n[asterisk]\nami_user = a\n"
                       f"ami_secret = b\nspool_dir = {d}/spool\nrun_user =\n[dialer]\n")
        print(f"file: {n} numbers, {f.stat().st_size / 1e6:.1f} MB, Windows-1251, in {base}")
        rows = []
        import_cmd = [str(KIT), "--config", str(cfg), "dialer", "import", str(f)]
        bare_cmd = [sys.executable, "-c", BARE, str(f), str(d / "b.db")]
        for label, cmd in (("bare: decode + csv + SQLite insert", bare_cmd),
                           ("kit: dialer import (new list)", import_cmd),
                           ("kit: dialer import (same file again)", import_cmd)):
            t = time.perf_counter()
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            _, _, ru = os.wait4(p.pid, 0)
            out = p.stdout.read().strip() if p.stdout else ""
            took = time.perf_counter() - t
            rss = ru.ru_maxrss / 1024
            rows.append((label, took, rss))
            print(f"{label:<40} {took:6.2f} s  peak RSS {rss:6.0f} MB   {out[-110:]}", flush=True)
        bare_t, bare_rss = rows[0][1], rows[0][2]
        for label, took, rss in rows[1:]:
            print(f"{label:<40} {took / bare_t:5.2f}x the bare time, {rss / bare_rss:5.2f}x its peak RSS")


if __name__ == "__main__":
    main()
