"""Benchmark: `asterisk-kit beeline sync` of 200 recordings of 5 MB (and of 1 MB, to show that memory
does not grow with the file size) from the fake Beeline API to a local FTP server (pyftpdlib) and to
OpenSSH's sshd (SFTP).

Runs the real command as a subprocess (the way cron does); the fake API and the FTP server run in
their own processes, so the figures are the command's own: wall-clock seconds, MB/s of audio
delivered and peak RSS (ru_maxrss of the command). Checks every delivered file's size.

    .venv/bin/python benchmarks/beeline_export.py [--records 200] [--sizes 1000000,5000000] [--dest ftp,sftp]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent / "asterisk-kit"

from testbed.ftpservers import FTP_PASSWORD, Sshd  # noqa: E402


def start(args, prefix: str) -> tuple:
    p = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    line = p.stdout.readline().strip()
    if not line.startswith(prefix):
        p.kill()
        raise SystemExit(f"{args[0]} did not start")
    return p, line


def run_sync_rss(ini: Path) -> tuple:
    """Like run_sync, with the child's peak RSS from wait4 (Popen.communicate would reap it first)."""
    t = time.monotonic()
    with open(ini.parent / "out.txt", "w+") as out, open(ini.parent / "err.txt", "w+") as err:
        p = subprocess.Popen([str(BIN), "--config", str(ini), "beeline", "sync"], stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - t
        out.seek(0)
        err.seek(0)
        text, etext = out.read().strip(), err.read()
    if p.returncode != 0:
        raise SystemExit(f"sync failed:\n{text}\n{etext}")
    return seconds, usage.ru_maxrss / 1024.0, text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--sizes", default="1000000,5000000")
    ap.add_argument("--dest", default="ftp,sftp")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="beeline-bench-"))
    procs = []
    sshd = None
    print(f"{'dest':<5} {'records':>7} {'file MB':>8} {'total MB':>9} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12}")
    try:
        ftp, ftp_url = start(["testbed.ftpservers", str(work / "ftp-root")], "ftp://")
        procs.append(ftp)
        if "sftp" in a.dest:
            sshd = Sshd(work / "sshd")
            (work / "known_hosts").write_text(sshd.known_hosts_line())
        for size in [int(s) for s in a.sizes.split(",")]:
            api, api_url = start(["testbed.fakes.beeline", "--records", str(a.records), "--size", str(size)],
                                 "http://")
            procs.append(api)
            for dest in a.dest.split(","):
                run = work / f"run-{dest}-{size}"
                run.mkdir()
                if dest == "ftp":
                    url, out_dir, extra = ftp_url + f"/{run.name}", work / "ftp-root" / "incoming" / run.name, f"password = {FTP_PASSWORD}\n"
                else:
                    out_dir = work / "sftp-out" / run.name
                    url = sshd.url(str(out_dir))
                    extra = f"key_file = {sshd.client_key}\nknown_hosts = {work / 'known_hosts'}\n"
                ini = run / "kit.ini"
                ini.write_text(f"[general]\ndata_dir = {run}/data\n[log]\ndir = {run}/log\n"
                               f"[asterisk]\nami_user = x\nami_secret = y\nrun_user =\n"
                               f"[beeline:bench]\ntoken = tok-0001\napi_url = {api_url}\ndestination = {url}\n{extra}")
                seconds, rss, line = run_sync_rss(ini)
                files = list(out_dir.glob("*.mp3"))
                assert len(files) == a.records and all(f.stat().st_size == size for f in files), line
                assert len(list(out_dir.glob("*.json"))) == a.records
                total = size * a.records / 1e6
                print(f"{dest:<5} {a.records:>7} {size / 1e6:>8.1f} {total:>9.0f} {seconds:>8.1f} "
                      f"{total / seconds:>7.1f} {rss:>12.1f}", flush=True)
                shutil.rmtree(out_dir)
            api.terminate()
            api.wait()
            procs.remove(api)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        if sshd:
            sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
