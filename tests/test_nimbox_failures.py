"""NiMbox under failure: the hook's write-ahead outbox and its one deadline, the token kept out of
logs, store and output whatever fails, skipped CDR rows logged, MySQL that never answers, and a
`nimbox delete` killed half-way."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from asterisk_kit.config import load
from testbed.fakes.nimbox import FakeNimbox
from testbed.kitcli import BIN, kit
from testbed.nimbox import nimbox_config
from tests.test_nimbox import _now, cdr_rows, insert_cdr

TOKEN = "tok-Zq81secret"
AGI_BIN = BIN.parent / "asterisk-kit-agi"
# A call the fake knows (11 digits), started now (epoch), with every AGI argument.
ARGS = ["101", "84951234567", "12", "9", "ANSWERED", "out-84951234567-101-20261123-180000-1.2.wav", "1.2"]


@pytest.fixture()
def fake():
    f = FakeNimbox(token=TOKEN).start()
    yield f
    f.mode = "up"
    f.stop()


def run_agi(cfg: Path, start: str = "", netns: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
    """The hook as Asterisk runs it: asterisk-kit-agi with the AGI environment on stdin and an
    answer for each AGI command."""
    env_lines = "agi_request: asterisk-kit-agi\nagi_channel: Local/x\n\n" + "200 result=1\n" * 5
    cmd = [str(AGI_BIN), f"--config={cfg}", "nimbox-call", start or str(int(time.time())), *ARGS]
    return subprocess.run(in_netns(cmd) if netns else cmd, input=env_lines, capture_output=True, text=True,
                          timeout=timeout)


def in_netns(cmd, silent_dns: bool = False):
    """CMD in a private network namespace (only lo) whose resolv.conf points at 127.0.0.1: a DNS
    lookup fails at once (nothing listens on port 53) or, with SILENT_DNS, hangs (a UDP socket that
    never answers). No query leaves the machine."""
    import tempfile
    fd, name = tempfile.mkstemp(prefix="nimbox-test-resolv-")   # left for the OS to clean (tiny)
    os.close(fd)
    resolv = Path(name)
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
    quoted = " ".join("'" + c.replace("'", "'\\''") + "'" for c in cmd)
    if not silent_dns:
        script = f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && exec {quoted}"
    else:
        dns = (f"{sys.executable} -c 'import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
               f"s.bind((\"127.0.0.1\",53)); time.sleep(120)' </dev/null >/dev/null 2>&1 & D=$!; sleep 0.5; ")
        script = (f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && {dns}{quoted}; rc=$?; "
                  "kill $D; exit $rc")
    return ["unshare", "-mn", "--", "sh", "-c", script]


def store_rows(cfg: Path):
    conn = sqlite3.connect(str(load(str(cfg)).data_dir / "asterisk-kit.sqlite"))
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM nimbox_calls")]
    finally:
        conn.close()


# ---- the hook: write-ahead, one deadline --------------------------------------------------------

def test_hook_killed_while_nimbox_hangs_keeps_the_call(tmp_path, fake):
    """The call is committed to the outbox before the request leaves: a hook killed while NiMbox
    does not answer has lost nothing."""
    fake.mode, fake.hang_seconds = "hang", 30
    cfg = nimbox_config(tmp_path, None, fake.url, token=TOKEN, hook_timeout="8")
    load(str(cfg))
    env_lines = "agi_request: asterisk-kit-agi\n\n" + "200 result=1\n" * 5
    p = subprocess.Popen([str(AGI_BIN), f"--config={cfg}", "nimbox-call", str(int(time.time())), *ARGS],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    p.stdin.write(env_lines)
    p.stdin.flush()
    deadline = time.monotonic() + 30
    while fake.arrivals < 1:
        assert time.monotonic() < deadline, "the hook's request never arrived"
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    (row,) = store_rows(cfg)
    assert row["state"] == "pending" and row["destination"] == "84951234567" and row["origin"] == "hook"
    fake.mode = "up"
    r = kit(cfg, "nimbox", "sync")
    assert r.returncode == 0 and "created 1," in r.stdout, r.stdout + r.stderr


def test_hook_stays_within_hook_timeout_when_the_store_is_locked(tmp_path, fake):
    """SQLite's busy wait is part of hook_timeout: a store locked by another writer for longer than
    the timeout does not hold the channel (the old hook waited 30 s after sending)."""
    fake.mode = "503"
    cfg = nimbox_config(tmp_path, None, fake.url, token=TOKEN, hook_timeout="1")
    from asterisk_kit.nimbox import outbox
    holder = outbox.connect(load(str(cfg)))
    holder.execute("BEGIN IMMEDIATE")
    try:
        t0 = time.monotonic()
        r = run_agi(cfg)
        took = time.monotonic() - t0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.returncode == 0
    assert took < 1.0 + 2.0, took       # the timeout plus the script's start (Python, pyst2, config)
    log = "".join(p.read_text() for p in (tmp_path / "log").glob("*.log"))
    assert "not written to the outbox" in log and "84951234567" in log, log


def test_hook_dns_lookup_counts_in_hook_timeout(tmp_path):
    """A DNS server that never answers (the resolver alone would wait 2 x 5 s) costs the hook no more
    than hook_timeout; the call waits in the outbox."""
    cfg = nimbox_config(tmp_path, None, "http://nimbox.example.test", token=TOKEN, hook_timeout="1")
    load(str(cfg))
    env_lines = "agi_request: asterisk-kit-agi\n\n" + "200 result=1\n" * 5
    cmd = [str(AGI_BIN), f"--config={cfg}", "nimbox-call", str(int(time.time())), *ARGS]
    # Timed inside the namespace, after the silent DNS server is up.
    timed = [sys.executable, "-c", "import subprocess,sys,time; t=time.monotonic(); "
             "subprocess.run(sys.argv[1:], input=sys.stdin.read(), text=True, capture_output=True); "
             "print(time.monotonic()-t)", *cmd]
    r = subprocess.run(in_netns(timed, silent_dns=True), input=env_lines, capture_output=True, text=True,
                       timeout=60)
    took = float(r.stdout.strip().splitlines()[-1])
    assert took < 1.0 + 2.0, (took, r.stderr)
    (row,) = store_rows(cfg)
    assert row["state"] == "pending" and "DNS" in row["last_error"], row


# ---- the token never shows -------------------------------------------------------------------------

def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


FAILURES = ["refused", "reset", "timeout", "dns", "error body"]


@pytest.mark.parametrize("failure", FAILURES)
def test_token_never_in_logs_store_or_output(tmp_path, fake, failure):
    url = {"refused": f"http://127.0.0.1:{_closed_port()}",
           "dns": "http://nimbox.example.test:8080"}.get(failure, fake.url)
    fake.mode = {"reset": "reset", "timeout": "hang", "error body": "echo"}.get(failure, "up")
    fake.hang_seconds = 5
    cfg = nimbox_config(tmp_path, None, url, token=TOKEN, hook_timeout="1", timeout="1")
    netns = failure == "dns"
    outputs = []
    r = run_agi(cfg, netns=netns)                                     # the hook (stdlib transport)
    outputs += [r.stdout, r.stderr]
    assert [row["state"] for row in store_rows(cfg)] == ["pending"], (r.stdout, r.stderr)
    for args in (["nimbox", "sync", "-v"], ["nimbox", "status"], ["doctor"],
                 ["nimbox", "delete", "--from", "2026-11-20", "--to", "2026-11-21", "--yes"]):
        cmd = [str(BIN), "--config", str(cfg), *args]
        r = subprocess.run(in_netns(cmd) if netns else cmd, capture_output=True, text=True, timeout=120)
        outputs += [r.stdout, r.stderr]
    (row,) = store_rows(cfg)
    assert row["state"] == "pending" and row["attempts"] >= 2 and row["last_error"], row   # it did fail
    assert TOKEN not in "".join(outputs), "".join(outputs)
    logs = list((tmp_path / "log").glob("*.log"))
    assert logs
    for path in logs:
        text = path.read_text()
        assert TOKEN not in text, (path, text)
    for path in (tmp_path / "data").glob("asterisk-kit.sqlite*"):
        assert TOKEN.encode() not in path.read_bytes(), path
    # What went wrong is still told.
    assert "temporary" in "".join(p.read_text() for p in logs)


# ---- skipped CDR rows ------------------------------------------------------------------------------

def test_skipped_cdr_rows_logged_with_the_call_and_counted_by_reason(tmp_path, mariadb, fake):
    mariadb.execute("TRUNCATE TABLE cdr", database="asteriskcdrdb")
    try:
        t = _now() - dt.timedelta(minutes=30)
        rows = [(t, "Anonymous", "84951234567", 5, 3, "ANSWERED", "", "1800000000.1", "1800000000.1", 1),
                (t, "", "84951234568", 5, 3, "ANSWERED", "", "1800000000.2", "1800000000.2", 1),
                (t, "101", "8495 123 4569", 5, 3, "ANSWERED", "", "", "1800000000.3", 1),
                (t, "102", "84951234570", 5, 3, "ANSWERED", "", "1800000000.4", "1800000000.4", 1)]
        insert_cdr(mariadb, rows)
        cfg = nimbox_config(tmp_path, None, fake.url, token=TOKEN, mysql=mariadb.mysql_section())
        cfg.write_text(cfg.read_text().replace("level = DEBUG", "level = INFO"))
        r = kit(cfg, "nimbox", "sync")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "skipped 3 (destination not a number: 1, source not a number: 2)" in r.stdout, r.stdout
        log = "".join(p.read_text() for p in (tmp_path / "log").glob("nimbox-*.log"))
        skipped = [ln for ln in log.splitlines() if "CDR row skipped" in ln]
        assert len(skipped) == 3, log
        assert all(" INFO " in ln for ln in skipped), skipped
        assert any("linkedid '1800000000.1'" in ln and "source not a number" in ln and f"calldate {t}" in ln
                   for ln in skipped), skipped
        assert any("uniqueid '1800000000.3'" in ln and "destination not a number" in ln for ln in skipped), skipped
        assert len(fake.records) == 1
    finally:
        mariadb.execute("TRUNCATE TABLE cdr", database="asteriskcdrdb")


# ---- MySQL that accepts and never answers ------------------------------------------------------------

@pytest.fixture()
def mute_mysql():
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass
    th = threading.Thread(target=accept, daemon=True)
    th.start()
    yield srv.getsockname()[1]
    stop.set()
    th.join(2)
    for c in held:
        c.close()
    srv.close()


def test_mysql_that_never_answers_fails_every_user_in_bounded_time(tmp_path, fake, mute_mysql):
    section = (f"[mysql]\nhost = 127.0.0.1\nport = {mute_mysql}\nuser = kit\npassword = pw\n"
               "connect_timeout = 1\nread_timeout = 2\nwrite_timeout = 2\n")
    cfg = nimbox_config(tmp_path, None, fake.url, token=TOKEN, mysql=section)
    t0 = time.monotonic()
    r = kit(cfg, "nimbox", "sync", timeout=60)        # the old code hangs here forever (lock held)
    assert r.returncode == 1 and time.monotonic() - t0 < 20, r.stdout + r.stderr
    assert "timed out" in r.stderr or "Lost connection" in r.stderr or "2013" in r.stderr, r.stderr
    r = kit(cfg, "nimbox", "sync", timeout=60)
    assert r.returncode == 1, r.stderr                   # not 75: the lock was released
    t0 = time.monotonic()
    r = kit(cfg, "doctor", timeout=60)
    line = [ln for ln in r.stdout.splitlines() if " mysql" in ln][0]
    assert line.startswith("FAILED") and time.monotonic() - t0 < 30, r.stdout
    # The BLF name source (the daemon's worker thread) gives up too, keeping the config's names.
    import logging

    from asterisk_kit.blf.names import NameSource
    from asterisk_kit.config import parse_text
    c = parse_text(f"[asterisk]\nami_user = x\nami_secret = x\n{section}[blf]\nnames = 101: Olga\n",
                   tmp_path / "blf.ini")
    t0 = time.monotonic()
    assert NameSource(c, logging.getLogger("test.blf")).load() == {"101": "Olga"}
    assert time.monotonic() - t0 < 10


# ---- nimbox delete killed half-way -------------------------------------------------------------------

def test_delete_killed_after_nimbox_deleted_loses_no_day(tmp_path, mariadb, fake):
    """The kit forgets the days before it asks NiMbox to delete them: killed while NiMbox deletes,
    the next sync sends those days again (the old order left them 'known' and never sent)."""
    mariadb.execute("TRUNCATE TABLE cdr", database="asteriskcdrdb")
    try:
        today = _now().replace(hour=12, minute=0, second=0)
        rows = []
        for days_ago in (3, 2, 1):
            r_, _, _ = cdr_rows(20, today - dt.timedelta(days=days_ago), prefix=str(days_ago))
            rows += r_
        insert_cdr(mariadb, rows)
        cfg = nimbox_config(tmp_path, None, fake.url, token=TOKEN, mysql=mariadb.mysql_section(), full_days="10")
        r = kit(cfg, "nimbox", "sync", "--full")
        assert r.returncode == 0, r.stdout + r.stderr
        everything = set(fake.records)
        middle = (today - dt.timedelta(days=2)).date().isoformat()
        assert any(k[0].startswith(middle) for k in everything)
        fake.delete_hang = 30                  # NiMbox deletes, then answers late: the kit is killed waiting
        p = subprocess.Popen([str(BIN), "--config", str(cfg), "nimbox", "delete", "--from", middle, "--to", middle,
                              "--yes"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while any(k[0].startswith(middle) for k in list(fake.records)):
            assert time.monotonic() < deadline and p.poll() is None, "the delete did not happen"
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        fake.delete_hang = 0
        r = kit(cfg, "nimbox", "sync", "--full")
        assert r.returncode == 0, r.stdout + r.stderr
        assert set(fake.records) == everything, r.stdout
    finally:
        mariadb.execute("TRUNCATE TABLE cdr", database="asteriskcdrdb")


def test_token_helper_redacts_every_form():
    from asterisk_kit.nimbox.client import redact
    text = json.dumps({"u": "/x?token=a%2Bb&y=1", "raw": "a+b", "plus": "a%2Bb"})
    assert "a+b" not in redact(text, "a+b") and "a%2Bb" not in redact(text, "a+b")
