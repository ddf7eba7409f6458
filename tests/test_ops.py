"""Operations: file modes under umask 022, job output to syslog, loud failure when the log folder is
unwritable, and no traceback for ordinary situations (closed stdin, a reader gone away, a broken store)."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from asterisk_kit import config, logsetup
from testbed.asterisk import free_port
from testbed.kitcli import BIN

AGI_BIN = Path(sys.executable).parent / "asterisk-kit-agi"


def _umask022():
    os.umask(0o022)


def run(cfg: Path, *args: str, stdin: str = "", env=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The kit as cron would start it, but with the common umask 022 (what files get without the fix)."""
    e = dict(os.environ, **(env or {}))
    return subprocess.run([str(BIN), "--config", str(cfg), *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=e, preexec_fn=_umask022, start_new_session=True)


class SyslogSink:
    """A unix datagram socket standing in for /dev/log; collects what arrives."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list = []
        self._stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(65536).decode(errors="replace"))
            except socket.timeout:
                continue
            except OSError:
                return

    def wait_for(self, text: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in list(self.messages):
                if text in m:
                    return m
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never reached syslog; got {self.messages}")

    def close(self):
        self._stop = True
        self.sock.close()
        self.thread.join(2)


@pytest.fixture
def sink(tmp_path):
    s = SyslogSink(tmp_path / "log.sock")
    yield s
    s.close()


# ---- file modes -------------------------------------------------------------------------------------

def test_files_the_kit_creates_are_not_readable_by_others(tmp_path):
    """Every kind of kit process (cron jobs, user management, status, alerts, the web app, the AGI) is
    started with umask 022 and run_user = the current user (root in CI; other users could not read the
    interpreter installed under /root). Nothing it creates under the data, log and temp folders may be
    readable by others: the store holds password hashes and phone lists, logs hold numbers, the
    Beeline temp folder holds recordings of calls."""
    from aiosmtpd.controller import Controller

    from testbed.fakes.beeline import FakeBeeline
    from testbed.fakes.comagic import FakeComagic
    from testbed.fakes.nimbox import FakeNimbox
    from testbed.ftpservers import FTP_PASSWORD, FtpServer

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    smtp_port = free_port()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    beeline = FakeBeeline(records=2, size=5000).start()
    comagic = FakeComagic(calls=50, first_day=dt.date.today() - dt.timedelta(days=3), days=3).start()
    nimbox = FakeNimbox().start()
    beeline.fault("download", None, "truncate", times=1000)
    ftp = FtpServer(tmp_path / "ftp-root")
    base = tmp_path / "kit"
    base.mkdir()
    data, logs, tmp = base / "data", base / "log", base / "tmp"
    tmp.mkdir(mode=0o1777)
    os.chmod(tmp, 0o1777)
    cfg = base / "kit.ini"
    cfg.write_text(f"""[general]
data_dir = {data}
[log]
dir = {logs}
syslog =
[asterisk]
ami_host = 127.0.0.1
ami_port = {free_port()}
ami_user = x
ami_secret = y
ami_timeout = 1
spool_dir = {base}/spool
etc_dir = {base}/etc
run_user =
[dialer]
[beeline:acme]
token = {beeline.token}
api_url = {beeline.url}
destination = {ftp.url()}
password = {FTP_PASSWORD}
retry_pause = 0.05
request_timeout = 5
transfer_timeout = 5
[comagic]
api_url = {comagic.url}
login = analytics
password = secret-pw
first_date = {(dt.date.today() - dt.timedelta(days=3)).isoformat()}
[nimbox]
url = {nimbox.url}
token = {nimbox.token}
[alerts]
mail_to = admin@example.com
smtp_host = 127.0.0.1
smtp_port = {smtp_port}
failed_runs = 1
""")
    env = {"TMPDIR": str(tmp)}
    try:
        assert run(cfg, "user", "add", "boss", "--password-stdin", stdin="correct horse battery\n",
                   env=env).returncode == 0
        assert run(cfg, "dialer", "tick", env=env).returncode == 0
        r = run(cfg, "beeline", "sync", env=env)
        assert r.returncode == 1, r.stderr      # downloads break: the partial recording waits in the temp folder
        assert list((data / "beeline-tmp").rglob("*.mp3")), "the failed upload left no temp recording to check"
        r = run(cfg, "comagic", "export", env=env)
        assert r.returncode == 0, r.stderr
        r = run(cfg, "nimbox", "sync", env=env)
        assert r.returncode == 0, r.stderr
        run(cfg, "status", env=env)
        r = run(cfg, "alerts", "check", env=env)
        assert r.returncode == 0, r.stderr
        port = free_port()
        web = subprocess.Popen([str(BIN), "--config", str(cfg), "web", "--port", str(port)], preexec_fn=_umask022,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, **env))
        try:
            import requests
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(f"http://127.0.0.1:{port}/login", timeout=2)
                    break
                except requests.ConnectionError:
                    assert time.monotonic() < deadline and web.poll() is None, "the web app did not start"
                    time.sleep(0.2)
        finally:
            web.terminate()
            web.wait(15)
        # the AGI as Asterisk starts it: an AGI environment on stdin, then the channel hangs up
        subprocess.run([str(AGI_BIN), f"--config={cfg}", "no-such-handler"], input="agi_request: x\n\n", text=True,
                       capture_output=True, timeout=60, preexec_fn=_umask022, env=dict(os.environ, **env))
    finally:
        smtp.stop()
        beeline.stop()
        comagic.stop()
        nimbox.stop()
        ftp.stop()
    created = [p for d in (data, logs, tmp) for p in [d, *d.rglob("*")] if d.exists() and p != tmp]
    assert any(p.name == "asterisk-kit.sqlite" for p in created)
    assert any(p.name.startswith("agi-") for p in created) and any(p.name.startswith("web-") for p in created)
    assert any(p.suffix == ".duckdb" for p in created), created
    readable = [f"{p} {stat.filemode(p.stat().st_mode)}" for p in created if p.stat().st_mode & stat.S_IROTH]
    assert not readable, "readable by others:\n" + "\n".join(readable)


# ---- syslog and unwritable log folders ----------------------------------------------------------------

def test_cron_line_sends_job_output_to_syslog(tmp_path, sink):
    """Each rendered cron line, run by /bin/sh as cron does, sends what the job prints to syslog.
    `logger` is the real util-linux one; a wrapper earlier in PATH only points it at the test socket
    instead of /dev/log."""
    from asterisk_kit.install import render_cron
    cfg_path = tmp_path / "kit.ini"
    cfg_path.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/nolog/x\n"
                        f"[asterisk]\nami_user = a\nami_secret = b\nrun_user =\n[dialer]\n"
                        f"[alerts]\nmail_to = admin@example.com\n")
    (tmp_path / "nolog").write_text("a file where the log folder should be")
    cfg = config.load(str(cfg_path))
    lines = [ln for ln in render_cron(cfg).splitlines() if ln and not ln.startswith(("#", "SHELL", "PATH"))]
    assert lines and all(" 2>&1 | logger -t asterisk-kit-" in ln and "/dev/null" not in ln for ln in lines), lines
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real = shutil.which("logger")
    assert real, "util-linux logger missing"
    (bindir / "logger").write_text(f"#!/bin/sh\nexec {real} --socket {sink.path} \"$@\"\n")
    os.chmod(bindir / "logger", 0o755)
    assert any(ln.startswith("*/5 * * * * root ") and ln.endswith("alerts check 2>&1 | logger -t asterisk-kit-alerts")
               for ln in lines), lines
    tick = next(ln for ln in lines if "dialer tick" in ln)
    assert tick.endswith("dialer tick 2>&1 | logger -t asterisk-kit-dialer"), tick
    command = " ".join(tick.split()[6:])          # minute hour dom month dow user COMMAND
    r = subprocess.run(["/bin/sh", "-c", command], env={"PATH": f"{bindir}:/usr/bin:/bin"}, capture_output=True,
                       text=True, timeout=120, start_new_session=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)
    got = sink.wait_for("cannot write log files")
    assert "asterisk-kit-dialer" in got and str(tmp_path / "nolog") in got


def test_job_that_cannot_write_its_log_fails_loudly(tmp_path, sink):
    """Before: a warning on stderr (thrown away by cron) and the job went on unlogged. Now: exit 1,
    the reason on stderr and in syslog ([log] syslog)."""
    (tmp_path / "nolog").write_text("")
    cfg = tmp_path / "kit.ini"
    cfg.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/nolog/x\nsyslog = {sink.path}\n"
                   f"[asterisk]\nami_user = a\nami_secret = b\nrun_user =\n[dialer]\n")
    r = run(cfg, "dialer", "tick")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"cannot write log files in {tmp_path}/nolog/x ([log] dir)" in r.stderr and "Traceback" not in r.stderr
    got = sink.wait_for("cannot write log files")
    assert "asterisk-kit-dialer" in got
    # recorded for `asterisk-kit status` too (the store is writable)
    st = run(cfg, "status")
    assert "cannot write log files" in st.stdout, st.stdout


def test_agi_falls_back_to_stderr_and_syslog(tmp_path, capsys, sink):
    """The AGI must never stop a call's hook over logging: it logs on, to stderr and syslog."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = config.parse_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {blocker}/sub\n"
                            f"syslog = {sink.path}\n[asterisk]\nami_user = a\nami_secret = b\n",
                            tmp_path / "kit.ini", environ={})
    with pytest.raises(logsetup.LogDirError):
        logsetup.setup(cfg, "job", to_stderr=False)
    log = logsetup.setup(cfg, "agi", to_stderr=False, fallback=True)
    log.info("still logged")
    err = capsys.readouterr().err
    assert "cannot write log files" in err and "still logged" in err
    assert "asterisk-kit-agi" in sink.wait_for("cannot write log files")
    logsetup.setup(None, "reset", to_stderr=False)


def test_log_files_are_created_0640_under_umask_022(tmp_path):
    old = os.umask(0o022)
    try:
        cfg = config.parse_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\n"
                                f"[asterisk]\nami_user = a\nami_secret = b\n", tmp_path / "kit.ini", environ={})
        logsetup.setup(cfg, "modes", to_stderr=False).info("x")
        from asterisk_kit import storage
        storage.connect(cfg).execute("CREATE TABLE t (x)")
    finally:
        os.umask(old)
        logsetup.setup(None, "reset", to_stderr=False)
    for p in [*(tmp_path / "log").iterdir(), *(tmp_path / "data").iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o640, (p, oct(p.stat().st_mode))


# ---- no traceback for ordinary situations ---------------------------------------------------------------

def _simple_cfg(tmp_path) -> Path:
    cfg = tmp_path / "kit.ini"
    cfg.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\n"
                   f"[asterisk]\nami_user = a\nami_secret = b\nrun_user =\n[dialer]\n")
    return cfg


def test_user_add_with_closed_stdin(tmp_path):
    cfg = _simple_cfg(tmp_path)
    r = subprocess.run([str(BIN), "--config", str(cfg), "user", "add", "olga"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60, start_new_session=True)  # no tty to ask on
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "no password given" in r.stderr and "--password-stdin" in r.stderr
    listed = subprocess.run([str(BIN), "--config", str(cfg), "user", "list"], capture_output=True, text=True,
                            timeout=60)
    assert "olga" not in listed.stdout


def test_reader_gone_away_is_no_traceback(tmp_path):
    """`dialer report | head` and `dialer export phones | head`: the reader stops early (EPIPE)."""
    cfg = _simple_cfg(tmp_path)
    numbers = "".join(f"8495{n:07d}\n" for n in range(6000))
    r = subprocess.run([str(BIN), "--config", str(cfg), "dialer", "import", "-"], input=numbers, text=True,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    from asterisk_kit.dialer import store
    conn = store.connect(config.load(str(cfg)))
    store.create_run(conn, "manual", dt.date.today().isoformat())
    conn.close()
    for args in ("dialer report", "dialer report --csv", "dialer export phones"):
        p = subprocess.run(["/bin/sh", "-c", f"{BIN} --config {cfg} {args} | head -n 2; echo rc=$?"],
                           capture_output=True, text=True, timeout=120)
        assert len(p.stdout.splitlines()) == 3, p.stdout
        assert p.stderr == "", f"{args}: {p.stderr}"


def test_unexpected_error_is_one_line_and_the_traceback_goes_to_the_log(tmp_path):
    cfg = _simple_cfg(tmp_path)
    (tmp_path / "data" / "asterisk-kit.sqlite").mkdir(parents=True)    # the store is a folder: cannot open
    r = subprocess.run([str(BIN), "--config", str(cfg), "dialer", "status"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    logfile = tmp_path / "log" / f"kit-{dt.date.today().isoformat()}.log"
    assert "unexpected error" in r.stderr and str(logfile) in r.stderr
    assert "Traceback" in logfile.read_text()
    v = subprocess.run([str(BIN), "--config", str(cfg), "-v", "dialer", "status"], capture_output=True, text=True,
                       timeout=60)
    assert v.returncode == 1 and "Traceback" in v.stderr


def test_a_sockets_broken_pipe_is_a_failure_not_a_quiet_reader_gone(tmp_path, monkeypatch, capsys):
    """EPIPE on a socket (AMI, an API) while stdout is fine must not pass for `| head`."""
    from asterisk_kit import cli, configcmd

    def broken(ctx):
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(configcmd, "example", broken)
    cfg = _simple_cfg(tmp_path)
    try:
        rc = cli.main(["--config", str(cfg), "config", "example"])
    finally:
        logsetup.setup(None, "reset", to_stderr=False)
    err = capsys.readouterr().err
    assert rc == 1 and "unexpected error: BrokenPipeError" in err and "Traceback" not in err, err
