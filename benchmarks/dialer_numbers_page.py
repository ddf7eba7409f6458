"""Opening a campaign's numbers page (/dialer/c/<id>/numbers) as the list grows from 1 000 to 200 000
numbers: page 1, a middle page and a search (a comment word that matches a few rows), each the median
of R requests to a running `asterisk-kit web` (HTTP, logged in), next to a bare baseline measured in
the same run: the same rows (count + one page of 100, LIMIT/OFFSET on the (campaign_id, created,
number) index) fetched with a bare sqlite3 query on the same database file, the ratio and the kit's
own share (kit - bare: HTTP, session, template), which is what must not grow with the list.

    .venv/bin/python benchmarks/dialer_numbers_page.py [R] [DIR]      (defaults: 20 /var/tmp)
"""
from __future__ import annotations

import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KIT = Path(sys.executable).parent / "asterisk-kit"
SIZES = (1_000, 20_000, 200_000)
PER_PAGE = 100


def setup(d: Path, n: int) -> Path:
    cfg = d / "kit.ini"
    cfg.write_text(f"[general]\ndata_dir = {d}/data\n[log]\ndir = {d}/log\n[asterisk]\nami_user = a\n"
                   f"ami_secret = b\nspool_dir = {d}/spool\nrun_user =\n[dialer]\n")
    subprocess.run([str(KIT), "--config", str(cfg), "user", "add", "bench", "--password-stdin"], input="bench pw 1\n",
                   text=True, check=True, capture_output=True)
    subprocess.run([str(KIT), "--config", str(cfg), "dialer", "status"], check=True, capture_output=True)
    db = sqlite3.connect(d / "data" / "asterisk-kit.sqlite")
    now = time.time()
    with db:
        db.executemany("INSERT INTO dialer_phones (campaign_id, number, digit, comment, created, updated) "
                       "VALUES (1, ?, ?, ?, ?, ?)",
                       ((f"89{i:09d}", str(i % 10) if i % 3 == 0 else "", f"Клиент {i} договор {i * 7}",
                         now + i // 1000, now + i // 1000) for i in range(n)))
    db.close()
    return cfg


def bare(dbfile: Path, q: str, page: int) -> float:
    db = sqlite3.connect(dbfile)
    t = time.perf_counter()
    if q:
        like = f"%{q}%"
        where, args = "campaign_id = 1 AND (number LIKE ? OR comment LIKE ?)", (like, like)
    else:
        where, args = "campaign_id = 1", ()
    db.execute("SELECT count(*) FROM dialer_phones WHERE campaign_id = 1").fetchone()
    if q:                                   # the page counts the matches too (no search: the total is that)
        db.execute(f"SELECT count(*) FROM dialer_phones WHERE {where}", args).fetchone()
    db.execute(f"SELECT number, digit, comment, created, updated FROM dialer_phones WHERE {where} "
               "ORDER BY created, number LIMIT ? OFFSET ?", (*args, PER_PAGE, (page - 1) * PER_PAGE)).fetchall()
    took = time.perf_counter() - t
    db.close()
    return took


def main() -> None:
    import requests

    from testbed.webserver import WebServer
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    base = sys.argv[2] if len(sys.argv) > 2 else "/var/tmp"
    print(f"median of {reps} requests each; page = {PER_PAGE} rows")
    print(f"{'numbers':>8}  {'view':<28} {'kit ms':>8} {'bare ms':>8} {'ratio':>7} {'kit - bare ms':>14}")
    for n in SIZES:
        with tempfile.TemporaryDirectory(dir=base) as d:
            cfg = setup(Path(d), n)
            srv = WebServer(cfg).start()
            try:
                s = requests.Session()
                tok = re.search(r'name="csrf" value="([^"]+)"', s.get(srv.url + "/login").text).group(1)
                s.post(srv.url + "/login", data={"csrf": tok, "user": "bench", "password": "bench pw 1"})
                middle = (n // PER_PAGE) // 2 or 1
                word = f"договор {7 * (n // 2)}"          # one number's comment (and its prefixes' matches)
                for label, q, page in (("page 1", "", 1), (f"page {middle} (middle)", "", middle),
                                       (f"search {word!r}", word, 1)):
                    url = f"{srv.url}/dialer/c/1/numbers?" + (f"q={q}&" if q else "") + f"page={page}"
                    r = s.get(url)
                    assert r.status_code == 200 and 'id="number-table"' in r.text, r.text[:300]
                    kit_t, bare_t = [], []
                    for _ in range(reps):
                        t = time.perf_counter()
                        s.get(url).raise_for_status()
                        kit_t.append(time.perf_counter() - t)
                        bare_t.append(bare(Path(d) / "data" / "asterisk-kit.sqlite", q, page))
                    k, b = statistics.median(kit_t) * 1000, statistics.median(bare_t) * 1000
                    print(f"{n:>8}  {label:<28} {k:8.1f} {b:8.2f} {k / b:6.1f}x {k - b:14.1f}", flush=True)
            finally:
                srv.stop()


if __name__ == "__main__":
    main()
