"""Benchmark: `asterisk-kit comagic export` of 150 000 calls (7 days) from the fake CoMagic API.

Runs the real command as a subprocess (the way cron does) with the default paging settings
(10000 rows a page; the 7-day range holds more than max_rows_per_range so it is split in halves),
once into the local DuckDB file and once into the fake BigQuery endpoint, and prints wall-clock
seconds and the command's peak RSS (the fakes run in their own processes, not counted).

    .venv/bin/python benchmarks/comagic_export.py [--calls 150000] [--only local|bigquery]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=150000)
    ap.add_argument("--only", choices=("local", "bigquery"))
    a = ap.parse_args()
    api, api_url = start("testbed.fakes.comagic", "--calls", str(a.calls), "--days", "7")
    procs = [api]
    try:
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
            seconds, rss_mb, summary = run_export(ini)
            print(f"{dest:>8}: {a.calls} calls in {seconds:.1f} s, peak RSS {rss_mb:.0f} MiB")
            print(f"          {summary}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
