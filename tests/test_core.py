"""Shared pieces: daily log files, job locks, the SQLite store, docs generated from the schema."""
import datetime as dt
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from asterisk_kit import config, logsetup, storage
from asterisk_kit.configdoc import markdown
from asterisk_kit.lock import JobLock, LockBusy

REPO = Path(__file__).resolve().parents[1]


def make_cfg(tmp_path, extra=""):
    text = (f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\nkeep_days = 3\n"
            f"[asterisk]\nami_user = a\nami_secret = b\n" + extra)
    return config.parse_text(text, tmp_path / "kit.ini", environ={})


def test_daily_log_file_and_pruning(tmp_path):
    cfg = make_cfg(tmp_path)
    logdir = tmp_path / "log"
    logdir.mkdir()
    old = logdir / f"dialer-{(dt.date.today() - dt.timedelta(days=10)).isoformat()}.log"
    recent = logdir / f"dialer-{(dt.date.today() - dt.timedelta(days=1)).isoformat()}.log"
    foreign = logdir / "notes.txt"
    for p in (old, recent, foreign):
        p.write_text("x\n")
    log = logsetup.setup(cfg, "dialer", to_stderr=False)
    log.info("hello %s", "world")
    log.debug("not at INFO")
    for h in logging.getLogger().handlers:
        h.flush()
    today = logdir / f"dialer-{dt.date.today().isoformat()}.log"
    text = today.read_text()
    assert "INFO asterisk_kit.dialer: hello world" in text and "not at INFO" not in text
    assert not old.exists() and recent.exists() and foreign.exists()


def test_run_by_hand_logs_to_the_terminal_too(tmp_path):
    """A job started from a terminal (stderr a tty) logs there and to its daily file; from cron
    (stderr not a tty) only to the file. Checked in a real child process with a real pty."""
    import os
    import pty
    cfg_path = tmp_path / "kit.ini"
    cfg_path.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\n"
                        f"[asterisk]\nami_user = a\nami_secret = b\n")
    code = ("import sys; from asterisk_kit import config, logsetup; "
            f"log = logsetup.setup(config.load({str(cfg_path)!r}), 'handjob'); log.info('marker %s', sys.argv[1])")
    master, slave = pty.openpty()
    try:
        p = subprocess.run([sys.executable, "-c", code, "tty"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=slave, timeout=60, cwd=str(REPO))
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert p.returncode == 0
    assert b"marker tty" in seen
    p = subprocess.run([sys.executable, "-c", code, "cron"], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60, cwd=str(REPO))
    assert p.returncode == 0 and b"marker" not in p.stderr, p.stderr
    text = (tmp_path / "log" / f"handjob-{dt.date.today().isoformat()}.log").read_text()
    assert "marker tty" in text and "marker cron" in text


def test_unwritable_log_dir_stops_a_job_but_not_the_agi(tmp_path, capsys):
    """A job stops (LogDirError, see test_ops for the CLI's exit and syslog); the AGI (fallback) logs on."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = make_cfg(tmp_path).__class__(None, {**{s: make_cfg(tmp_path).get_section(s) for s in config.SCHEMA},
                                             "log": {"dir": blocker / "sub", "level": "INFO", "keep_days": 3}},
                                       ["asterisk"])
    with pytest.raises(logsetup.LogDirError):
        logsetup.setup(cfg, "job", to_stderr=False)
    log = logsetup.setup(cfg, "job", to_stderr=False, fallback=True)
    log.info("still logged")
    err = capsys.readouterr().err
    assert "cannot write log files" in err and "still logged" in err


def test_lock_excludes_second_run_and_dies_with_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
sys.path.insert(0, {str(REPO)!r})
from asterisk_kit.lock import JobLock
JobLock({str(tmp_path)!r}, 'sync').acquire()
print('locked', flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockBusy) as ei:
            JobLock(tmp_path, "sync").acquire()
        assert f"pid {holder.pid}" in str(ei.value)
        JobLock(tmp_path, "other").acquire().release()  # other jobs are not blocked
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with JobLock(tmp_path, "sync"):  # a SIGKILLed holder leaves no stale lock
        pass


def test_storage_migrations_and_state(tmp_path):
    cfg = make_cfg(tmp_path)
    conn = storage.connect(cfg)
    migs = ["CREATE TABLE t (a INTEGER)", "ALTER TABLE t ADD COLUMN b TEXT; CREATE INDEX t_b ON t (b)"]
    storage.migrate(conn, "test", migs[:1])
    storage.migrate(conn, "test", migs)
    storage.migrate(conn, "test", migs)  # idempotent
    conn.execute("INSERT INTO t (a, b) VALUES (1, 'x')")
    storage.state_set(conn, "job", "cursor", "42")
    conn.close()
    conn2 = storage.connect(cfg)
    assert storage.state_get(conn2, "job", "cursor") == "42"
    assert storage.state_get(conn2, "job", "missing", "d") == "d"
    assert conn2.execute("SELECT version FROM schema_version WHERE component='test'").fetchone()[0] == 2
    with pytest.raises(ZeroDivisionError):
        with storage.transaction(conn2):
            storage.state_set(conn2, "job", "cursor", "43")
            raise ZeroDivisionError("a failure inside the transaction")
    assert storage.state_get(conn2, "job", "cursor") == "42"  # rolled back


def test_config_reference_doc_matches_code():
    assert (REPO / "docs" / "config.md").read_text() == markdown(), \
        "docs/config.md is stale: run `python -m asterisk_kit.configdoc > docs/config.md`"


def test_jobs_started_as_root_run_as_run_user():
    """Cron runs jobs as root: they drop to [asterisk] run_user so their files belong to it.

    Here the interpreter lives under /root (pyenv), which other users cannot read, so the child
    imports what it needs before dropping; on a PBX Python is under /usr or /opt."""
    import os
    import pwd
    import shutil
    import subprocess
    import sys
    import tempfile

    import pytest

    from testbed.kitcli import BIN
    if os.geteuid() != 0:
        pytest.skip("needs root (CI runs as root)")
    nobody = pwd.getpwnam("nobody")
    d = tempfile.mkdtemp(dir="/var/tmp")
    try:
        os.chmod(d, 0o755)
        data, logs = os.path.join(d, "data"), os.path.join(d, "log")
        for p in (data, logs):
            os.mkdir(p)
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        cfg = os.path.join(d, "kit.ini")
        with open(cfg, "w") as f:
            f.write(f"[general]\ndata_dir = {data}\n[log]\ndir = {logs}\n[asterisk]\nami_user = a\nami_secret = b\n"
                    f"run_user = nobody\n[dialer]\n")
        os.chmod(cfg, 0o644)
        code = ("import os, sqlite3, asterisk_kit.dialer.store as store, asterisk_kit.logsetup as ls\n"
                "from asterisk_kit.config import load\nfrom asterisk_kit.cli import drop_privileges\n"
                f"cfg = load({cfg!r})\ndrop_privileges(cfg)\n"
                "store.connect(cfg).execute('SELECT 1')\nls.setup(cfg, 'dialer', to_stderr=False).info('hi')\n"
                "print(os.getuid(), os.getgid())\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [str(nobody.pw_uid), str(nobody.pw_gid)]
        owners = {p: os.stat(os.path.join(data, p)).st_uid for p in os.listdir(data)}
        owners.update({p: os.stat(os.path.join(logs, p)).st_uid for p in os.listdir(logs)})
        assert "asterisk-kit.sqlite" in owners and set(owners.values()) == {nobody.pw_uid}, owners
        # `user add` keeps root (the admin runs it) and hands the store back to the run user.
        r = subprocess.run([str(BIN), "--config", cfg, "user", "add", "admin", "--password-stdin"],
                           input="long enough 1\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert os.stat(os.path.join(data, "asterisk-kit.sqlite")).st_uid == nobody.pw_uid
    finally:
        shutil.rmtree(d, ignore_errors=True)
