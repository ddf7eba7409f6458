"""Benchmark: `asterisk-kit comagic export` of 150 000 calls (7 days) from the fake CoMagic API.

Runs the real command as a subprocess (the way cron does) with the default paging settings
(10000 rows a page; the 7-day range holds more than max_rows_per_range so it is split in halves),
once into the local DuckDB file and once into the fake BigQuery endpoint, and prints wall-clock
seconds and the command's peak RSS (the fakes run in their own processes, not counted).

Baseline, same run, same fake API: a bare fetch of the same rows, a sequential loop of
get.calls_report requests (day by day, 10000-row pages, parsed with requests + the standard json,
as a plain script does; nothing converted or written), timed as a process from start to exit like
the export's command (both pay an interpreter start and their imports), then the ratio bare
seconds / export seconds (>= 1: the whole export is at least as fast as only fetching). Medians of
--repeat alternated runs, with the spread (min-max).

The rig must not be what is measured: the fake API runs in its own process and serves pages from
rows it encoded once (a warm-up fetch, not timed, fills that cache), so a page costs it ~15 ms.
--latency (seconds, a list): every answer is held that long before it is sent, standing for the
network round trip and CoMagic's own work on a 10000-row report, which a real cloud API always
adds and neither the vendor nor this rig can make zero. The vendor documents no figure; 0.2 s is
a conservative pick (a Moscow API from a server elsewhere, plus the query), 1 s what a 10 MB page
costs over a 100 Mbit/s link (0.8 s) plus the query (a fixed hold models no bandwidth). Latency is where the
kit's two pages in flight pay, and it costs the bare loop one wait per request; 0 is printed too,
the case least favourable to the kit (then only CPU on the shared cores counts).

    .venv/bin/python benchmarks/comagic_export.py [--calls 150000] [--only local|bigquery] [--repeat 3] \
        [--latency 0,0.2,1]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent / "asterisk-kit"


def start(module: str, *args: str) -> tuple:
    p = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    url = p.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        p.kill()
        raise SystemExit(f"{module} did not start")
    return p, url


def run_export(ini: Path) -> tuple:
    t = time.monotonic()
    p = subprocess.Popen([str(BIN), "--config", str(ini), "comagic", "export", "--from", "2026-01-01",
                          "--to", "2026-01-07"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.monotonic() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export failed:\n{out}\n{err}")
    return seconds, usage.ru_maxrss / 1024.0, out.strip()


def bare_fetch(api_url: str, calls: int) -> float:
    """Only fetch: every call of 2026-01-01 .. 07, sequentially, with the kit's default fields."""
    import requests

    from asterisk_kit.config import SCHEMA
    fields = [f.strip() for f in SCHEMA["comagic"].keys["fields"].default.split(",")]
    t = time.monotonic()
    s = requests.Session()
    token = s.post(api_url, json={"jsonrpc": "2.0", "id": 1, "method": "login.user",
                                  "params": {"login": "analytics", "password": "secret-pw"}},
                   timeout=60).json()["result"]["data"]["access_token"]
    got = 0
    for d in range(7):
        day = dt.datetime(2026, 1, 1) + dt.timedelta(days=d)
        offset, total = 0, 1
        while offset < total:
            r = s.post(api_url, json={"jsonrpc": "2.0", "id": 2, "method": "get.calls_report", "params": {
                "access_token": token, "date_from": f"{day:%Y-%m-%d %H:%M:%S}",
                "date_till": f"{day + dt.timedelta(days=1) - dt.timedelta(seconds=1):%Y-%m-%d %H:%M:%S}",
                "fields": fields, "limit": 10000, "offset": offset}}, timeout=120)
            result = json.loads(r.content)["result"]
            total = result["metadata"]["total_items"]
            offset += len(result["data"])
        got += offset
    seconds = time.monotonic() - t
    assert got == calls, (got, calls)
    return seconds


def bare_process(api_url: str, calls: int) -> float:
    """bare_fetch() in a process of its own, timed from start to exit (as the export's command is)."""
    t = time.monotonic()
    subprocess.run([sys.executable, __file__, "--bare-run", api_url, str(calls)], check=True)
    return time.monotonic() - t


def main() -> None:
    if sys.argv[1:2] == ["--bare-run"]:
        bare_fetch(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=150000)
    ap.add_argument("--only", choices=("local", "bigquery"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency", default="0,0.2,1", help="seconds each API answer is held (list)")
    a = ap.parse_args()
    for latency in [float(x) for x in a.latency.split(",")]:
        print(f"API latency {latency:g} s per request", flush=True)
        measure(a, latency)


def spread(values) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def measure(a, latency: float) -> None:
    api, api_url = start("testbed.fakes.comagic", "--calls", str(a.calls), "--days", "7", "--latency", str(latency))
    procs = [api]
    try:
        bare_fetch(api_url, a.calls)        # warm-up, not timed: the fake encodes each row once
        for dest in ("local", "bigquery"):
            if a.only and a.only != dest:
                continue
            tmp = Path(tempfile.mkdtemp(prefix="comagic-bench-"))
            extra = ""
            if dest == "bigquery":
                bq, bq_url = start("testbed.fakes.bigquery")
                procs.append(bq)
                extra = (f"destination = bigquery\nbigquery_project = bench\nbigquery_dataset = marketing\n"
                         f"bigquery_api_endpoint = {bq_url}\n")
            ini = tmp / "kit.ini"
            ini.write_text(f"[general]\ndata_dir = {tmp}/data\n[log]\ndir = {tmp}/log\n"
                           f"[asterisk]\nami_user = x\nami_secret = y\n"
                           f"[comagic]\napi_url = {api_url}\nlogin = analytics\npassword = secret-pw\n{extra}")
            runs, bare = [], []
            for _ in range(a.repeat):       # alternated, so both meet the same machine load
                runs.append(run_export(ini))
                bare.append(bare_process(api_url, a.calls))
            seconds = statistics.median(r[0] for r in runs)
            rss_mb = max(r[1] for r in runs)
            b = statistics.median(bare)
            ratios = [x / r[0] for x, r in zip(bare, runs, strict=True)]
            print(f"{dest:>8}: {a.calls} calls in {seconds:.1f} s ({spread([r[0] for r in runs])}), peak RSS "
                  f"{rss_mb:.0f} MiB; bare fetch of the same rows {b:.1f} s ({spread(bare)}); bare / export = "
                  f"{b / seconds:.2f} (per run {min(ratios):.2f}-{max(ratios):.2f})", flush=True)
            print(f"          {runs[-1][2]}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
