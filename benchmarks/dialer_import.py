"""Import of a 200 000-number Excel CSV in Windows-1251 (`number;digit;comment`, Cyrillic comments):
time and peak RSS of `asterisk-kit dialer import FILE` (a fresh list, then the same file again: all
updates), and of the same file uploaded through the numbers page of a campaign (POST
/dialer/c/2/numbers/import to a running `asterisk-kit web`, until the redirect to the stored report;
then the report page itself; peak RSS of the web process, VmHWM), next to a bare baseline in the same
run: a Python process that decodes the same file, splits it with csv and inserts the rows into a
SQLite table with a primary key on the same disk.

    .venv/bin/python benchmarks/dialer_import.py [N] [DIR]      (defaults: 200000 /var/tmp)
"""
from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KIT = Path(sys.executable).parent / "asterisk-kit"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
            out = next((line for line in (p.stdout.read() if p.stdout else "").splitlines()
                        if " added, " in line or " rows" in line), "")
            took = time.perf_counter() - t
            rss = ru.ru_maxrss / 1024
            rows.append((label, took, rss))
            print(f"{label:<40} {took:6.2f} s  peak RSS {rss:6.0f} MB   {out[-110:]}", flush=True)
        rows += page_import(cfg, f)
        bare_t, bare_rss = rows[0][1], rows[0][2]
        for label, took, rss in rows[1:]:
            print(f"{label:<40} {took / bare_t:5.2f}x the bare time, {rss / bare_rss:5.2f}x its peak RSS")


def _hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def page_import(cfg: Path, f: Path) -> list:
    """Upload F to campaign 2's numbers page twice (a new list, then all updates); time to the report."""
    import requests

    from testbed.webserver import WebServer
    subprocess.run([str(KIT), "--config", str(cfg), "user", "add", "bench", "--password-stdin"], input="bench pw 1\n",
                   text=True, check=True, capture_output=True)
    db = sqlite3.connect(cfg.parent / "data" / "asterisk-kit.sqlite")
    with db:
        db.execute("INSERT INTO dialer_campaigns (id, name, created, updated) VALUES (2, 'bench', 0, 0)")
    db.close()
    srv = WebServer(cfg).start()
    out = []
    try:
        s = requests.Session()
        tok = re.search(r'name="csrf" value="([^"]+)"', s.get(srv.url + "/login").text).group(1)
        s.post(srv.url + "/login", data={"csrf": tok, "user": "bench", "password": "bench pw 1"})
        page = srv.url + "/dialer/c/2/numbers"
        csrf = re.search(r'name="csrf" value="([^"]+)"', s.get(page).text).group(1)
        data = f.read_bytes()
        print(f"{'web process before the uploads':<40}          peak RSS {_hwm(srv.proc.pid):6.0f} MB", flush=True)
        for label in ("kit: page upload (new list)", "kit: page upload (same file again)"):
            t = time.perf_counter()
            r = s.post(page + "/import", data={"csrf": csrf, "mode": "add"},
                       files={"file": ("Клиенты.csv", data, "text/csv")}, allow_redirects=False, timeout=600)
            took = time.perf_counter() - t
            assert r.status_code == 303 and "report=" in r.headers["Location"], r.text[:300]
            t2 = time.perf_counter()
            shown = s.get(srv.url + r.headers["Location"].split("#")[0], timeout=60).text
            took_page = time.perf_counter() - t2
            summary = re.search(r'id="report-summary">([^<]*)<', shown).group(1)
            rss = _hwm(srv.proc.pid)
            out.append((label, took, rss))
            print(f"{label:<40} {took:6.2f} s  peak RSS {rss:6.0f} MB   report page {took_page * 1000:.0f} ms: "
                  f"{summary}", flush=True)
    finally:
        srv.stop()
    return out


if __name__ == "__main__":
    main()
