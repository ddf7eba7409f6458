"""Export N result rows (default 200 000) as CSV and XLSX: time and peak memory.

Each figure is measured in a fresh process (peak RSS is per process): the kit's exporter fed by a
generator of row dicts (nothing held), next to a bare baseline in the same run: csv.writer /
openpyxl write-only appending the raw values with no formatting, time zone or injection guard.
`imports` is the process with the libraries loaded and no rows, `list` holds the N row dicts in a
list, to show what keeping the rows in memory would cost.

    .venv/bin/python benchmarks/dialer_export.py [N] [DIR]
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

T0 = 1763880000.0


def rows(n: int):
    for i in range(n):
        yield {"number": f"8916{i:07d}", "comment": f"Клиент {i}, склад" if i % 3 else "=подозрительно",
               "attempts": 1 + i % 3, "first_call": T0 + i, "last_call": T0 + i + 60,
               "outcome": ("answered", "busy", "no_answer")[i % 3], "digit": str(i % 10) if i % 2 else "",
               "opted_out": i % 50 == 0}


def raw(n: int):
    for r in rows(n):
        yield (r["number"], r["comment"], r["attempts"], r["first_call"], r["last_call"], r["outcome"], r["digit"],
               r["opted_out"])


def one(mode: str, n: int, out: str) -> dict:
    import csv

    import openpyxl  # noqa: F401  (loaded in every mode, so the RSS figures compare like with like)

    from asterisk_kit.dialer import export
    t = time.perf_counter()
    if mode == "csv":
        with open(out, "wb") as f:
            export.write_csv(rows(n), f, tz="Europe/Moscow")
    elif mode == "csv-bare":
        with open(out, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter=";")
            for r in raw(n):
                w.writerow(r)
    elif mode == "xlsx":
        export.write_xlsx(rows(n), out, tz="Europe/Moscow")
    elif mode == "xlsx-bare":
        from openpyxl import Workbook
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("r")
        for r in raw(n):
            ws.append(r)
        wb.save(out)
    elif mode == "list":
        held = list(rows(n))
        assert len(held) == n
    took = time.perf_counter() - t
    size = os.path.getsize(out) if os.path.exists(out) else 0
    return {"mode": mode, "seconds": took, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "bytes": size}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(one(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    base = sys.argv[2] if len(sys.argv) > 2 else "/var/tmp"
    res = {}
    with tempfile.TemporaryDirectory(dir=base) as d:
        for mode in ("imports", "list", "csv-bare", "csv", "xlsx-bare", "xlsx"):
            out = os.path.join(d, f"{mode}.out")
            r = subprocess.run([sys.executable, __file__, "--one", mode, str(n), out], capture_output=True,
                               text=True, check=True)
            res[mode] = json.loads(r.stdout)
    print(f"{n} rows; load average {os.getloadavg()[0]:.1f}")
    print(f"{'':10} {'seconds':>8} {'peak RSS MB':>12} {'file MB':>8}")
    for mode, r in res.items():
        print(f"{mode:10} {r['seconds']:8.2f} {r['peak_rss_mb']:12.1f} {r['bytes'] / 1e6:8.1f}")
    for kit, bare in (("csv", "csv-bare"), ("xlsx", "xlsx-bare")):
        print(f"{kit}: {res[kit]['seconds'] / res[bare]['seconds']:.2f}x the bare time; "
              f"{res[kit]['peak_rss_mb'] - res['imports']['peak_rss_mb']:+.1f} MB over the imports-only process "
              f"(holding the rows in a list: {res['list']['peak_rss_mb'] - res['imports']['peak_rss_mb']:+.1f} MB)")


if __name__ == "__main__":
    main()
