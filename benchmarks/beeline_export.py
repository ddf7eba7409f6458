"""Benchmark: `asterisk-kit beeline sync` of 200 recordings of 5 MB (and of 1 MB, to show that memory
does not grow with the file size) from the fake Beeline API to a local FTP server (pyftpdlib) and to
OpenSSH's sshd (SFTP).

Runs the real command as a subprocess (the way cron does); the fake API and the FTP server run in
their own processes, so the figures are the command's own: wall-clock seconds, MB/s of audio
delivered and peak RSS (ru_maxrss of the command). Checks every delivered file's size.

Baseline, same run, same fake API and server: a bare sequential loop like the old script (list,
then per record: download the mp3 into memory, upload it and the JSON under their final names; no
checks, no state), records/s printed next to the kit's, and the ratio kit / bare (medians of --repeat
alternated runs, with the spread of the per-run ratios). Both are timed as processes, from start to
exit, the way cron runs them: the old script paid its interpreter start and imports too.

--latency (seconds, a list): every answer of the fake API is held that long before it starts,
standing for the network round trip and the portal's own work that a real cloud API always adds
(Beeline documents no figure; 0.1 s is a modest pick for a Moscow cloud PBX seen from a
customer's server). Only the API gets it: the customer's server is on loopback here, as it often
is on the same LAN in real life, so uploads cost only CPU. Latency is where the kit's pipeline
pays; 0 is printed too, the case least favourable to the kit (everything then competes for the
same 2 cores: fake API, FTP server, sshd and the exporter).

    .venv/bin/python benchmarks/beeline_export.py [--records 200] [--sizes 1000000,5000000] \
        [--dest ftp,sftp] [--repeat 3] [--latency 0,0.1]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
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


def bare_loop(api_url: str, dest: str, url: str, extra: dict, records: int) -> float:
    """The old script's shape, minus its sleep: sequential download-then-upload. Returns seconds."""
    import ftplib
    import io
    import json
    from urllib.parse import urlsplit

    import paramiko
    import requests
    t = time.monotonic()
    s = requests.Session()
    s.headers["X-MPBX-API-AUTH-TOKEN"] = "tok-0001"
    u = urlsplit(url)
    if dest == "ftp":
        ftp = ftplib.FTP()
        ftp.connect(u.hostname, u.port)
        ftp.login(u.username, extra["password"])
        try:
            ftp.mkd(u.path)
        except ftplib.error_perm:
            pass
        ftp.cwd(u.path)
        put = lambda data, name: ftp.storbinary(f"STOR {name}", io.BytesIO(data), 256 * 1024)  # noqa: E731
    else:
        ssh = paramiko.SSHClient()
        ssh.load_host_keys(extra["known_hosts"])
        ssh.connect(u.hostname, port=u.port, username=u.username, key_filename=extra["key_file"],
                    allow_agent=False, look_for_keys=False)
        sftp = ssh.open_sftp()
        try:
            sftp.mkdir(u.path)
        except IOError:
            pass
        sftp.chdir(u.path)
        put = lambda data, name: sftp.putfo(io.BytesIO(data), name, len(data), None, False)  # noqa: E731
    cursor, done = "", 0
    while done < records:
        page = s.get(api_url + "/records", params={"id": cursor} if cursor else {}, timeout=60).json()
        if not page:
            break
        for rec in page:
            rid = rec["id"]
            body = json.dumps({"employeeId": rec["abonent"]["phone"], "direction": "in", "language": "ru",
                               "respondentNumber": rec["phone"], "dateTime": "2026-01-01T00:00:00"},
                              ensure_ascii=False).encode()
            audio = s.get(f"{api_url}/v2/records/{rid}/download", timeout=60).content
            put(audio, f"{rid}.mp3")
            put(body, f"{rid}.json")
            cursor, done = rid, done + 1
    seconds = time.monotonic() - t
    if dest == "ftp":
        ftp.quit()
    else:
        ssh.close()
    return seconds


def bare_process(api_url: str, dest: str, url: str, extra: dict, records: int) -> float:
    """bare_loop() in a process of its own, timed from start to exit (as the kit's command is)."""
    import json
    t = time.monotonic()
    subprocess.run([sys.executable, __file__, "--bare-run", json.dumps([api_url, dest, url, extra, records])],
                   check=True)
    return time.monotonic() - t


def main() -> None:
    if sys.argv[1:2] == ["--bare-run"]:
        import json
        bare_loop(*json.loads(sys.argv[2]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--sizes", default="1000000,5000000")
    ap.add_argument("--dest", default="ftp,sftp")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each (kit, bare alternated); medians printed")
    ap.add_argument("--latency", default="0,0.1", help="seconds each API answer is held (list)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="beeline-bench-"))
    procs = []
    sshd = None
    print(f"{'latency':>7} {'dest':<5} {'records':>7} {'file MB':>8} {'total MB':>9} {'seconds':>8} {'MB/s':>7} "
          f"{'peak RSS MB':>12} {'kit rec/s':>10} {'bare rec/s':>11} {'kit/bare':>9} {'per run':>10}")
    try:
        ftp, ftp_url = start(["testbed.ftpservers", str(work / "ftp-root")], "ftp://")
        procs.append(ftp)
        if "sftp" in a.dest:
            sshd = Sshd(work / "sshd")
            (work / "known_hosts").write_text(sshd.known_hosts_line())
        for latency, size in [(float(x), int(s)) for x in a.latency.split(",") for s in a.sizes.split(",")]:
            api, api_url = start(["testbed.fakes.beeline", "--records", str(a.records), "--size", str(size),
                                  "--latency", str(latency)], "http://")
            procs.append(api)
            for dest in a.dest.split(","):
                kit_s, bare_s, rss = [], [], 0.0
                for rep in range(a.repeat):     # alternated, so both meet the same machine load
                    run = work / f"run-{dest}-{size}-{latency}-{rep}"
                    run.mkdir()
                    if dest == "ftp":
                        out_dir = work / "ftp-root" / "incoming" / run.name
                        url, extra = ftp_url + f"/{run.name}", f"password = {FTP_PASSWORD}\n"
                        bare_dir = work / "ftp-root" / "incoming" / f"bare-{run.name}"
                        bare_url = ftp_url + f"/{bare_dir.name}"
                        bare_extra = {"password": FTP_PASSWORD}
                    else:
                        out_dir = work / "sftp-out" / run.name
                        url = sshd.url(str(out_dir))
                        extra = f"key_file = {sshd.client_key}\nknown_hosts = {work / 'known_hosts'}\n"
                        bare_dir = work / "sftp-out" / f"bare-{run.name}"
                        bare_url = sshd.url(str(bare_dir))
                        bare_extra = {"key_file": str(sshd.client_key), "known_hosts": str(work / "known_hosts")}
                    ini = run / "kit.ini"
                    ini.write_text(f"[general]\ndata_dir = {run}/data\n[log]\ndir = {run}/log\n"
                                   f"[asterisk]\nami_user = x\nami_secret = y\nrun_user =\n"
                                   f"[beeline:bench]\ntoken = tok-0001\napi_url = {api_url}\n"
                                   f"destination = {url}\n{extra}")
                    seconds, peak, line = run_sync_rss(ini)
                    files = list(out_dir.glob("*.mp3"))
                    assert len(files) == a.records and all(f.stat().st_size == size for f in files), line
                    assert len(list(out_dir.glob("*.json"))) == a.records
                    shutil.rmtree(out_dir)
                    bare = bare_process(api_url, dest, bare_url, bare_extra, a.records)
                    assert len(list(bare_dir.glob("*.mp3"))) == a.records
                    shutil.rmtree(bare_dir)
                    kit_s.append(seconds)
                    bare_s.append(bare)
                    rss = max(rss, peak)
                seconds, bare = statistics.median(kit_s), statistics.median(bare_s)
                total = size * a.records / 1e6
                kit_rate, bare_rate = a.records / seconds, a.records / bare
                ratios = [b / k for k, b in zip(kit_s, bare_s, strict=True)]
                print(f"{latency:>7g} {dest:<5} {a.records:>7} {size / 1e6:>8.1f} {total:>9.0f} {seconds:>8.1f} "
                      f"{total / seconds:>7.1f} {rss:>12.1f} {kit_rate:>10.1f} {bare_rate:>11.1f} "
                      f"{kit_rate / bare_rate:>9.2f} {min(ratios):>4.2f}-{max(ratios):.2f}", flush=True)
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
