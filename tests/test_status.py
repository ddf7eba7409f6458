"""The admin's overview and alerts on the testbed: a failing Beeline job, a growing NiMbox outbox and a
stopped BLF daemon show in `asterisk-kit status` and on /status, and each incident sends one alert mail
(and one when it is over) to a local SMTP server (aiosmtpd)."""
from __future__ import annotations

import email
import re
import time

import pytest
import requests

from asterisk_kit import config
from testbed.asterisk import free_port
from testbed.blf import Daemon, add_blf_ami_user, blf_config, hints
from testbed.kitcli import kit
from testbed.memcached import Memcached

pytestmark = [pytest.mark.asterisk]
PASSWORD = "status page pass 1"


class Mailbox:
    def __init__(self):
        from aiosmtpd.controller import Controller
        self.messages: list = []
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                box.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def subjects(self):
        return [str(m["Subject"]) for m in self.messages]

    def stop(self):
        self.controller.stop()


@pytest.fixture
def mailbox():
    m = Mailbox()
    yield m
    m.stop()


@pytest.fixture
def mc():
    m = Memcached().start()
    yield m
    m.stop()


def login(url, user):
    s = requests.Session()
    page = s.get(url + "/login", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(url + "/login", data={"csrf": csrf, "user": user, "password": PASSWORD, "next": "/"},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text
    return s


def test_status_and_alerts_show_failing_beeline_growing_outbox_stopped_blf(tmp_path, asterisk, mc, mailbox):
    from testbed.fakes.beeline import FakeBeeline
    from testbed.ftpservers import FTP_PASSWORD, FtpServer
    from testbed.webserver import WebServer
    secret = add_blf_ami_user(asterisk)
    asterisk.add_test_dialplan("status", hints("ext-local", ["301", "302"]))
    beeline = FakeBeeline(records=3, size=3000).start()
    beeline.fault("list", None, "500", times=100000)         # the portal is broken: every run fails
    ftp = FtpServer(tmp_path / "ftp-root")
    cfg = blf_config(tmp_path / "kit", asterisk, mc.server, secret, extra=f"""
[web]
admins = boss
[beeline:acme]
token = {beeline.token}
api_url = {beeline.url}
destination = {ftp.url()}
password = {FTP_PASSWORD}
retry_pause = 0.05
request_timeout = 5
[nimbox]
url = http://127.0.0.1:{free_port()}
token = nimbox-token-secret
[alerts]
mail_to = admin@example.com
mail_from = pbx@example.com
smtp_host = 127.0.0.1
smtp_port = {mailbox.port}
failed_runs = 2
outbox_backlog = 2
blf_down_minutes = 0.05
""")
    web = None
    try:
        for user in ("boss", "clerk"):
            r = _user_add(cfg, user)
            assert r.returncode == 0, r.stderr
        # the BLF daemon runs, then is stopped
        daemon = Daemon(cfg).start()
        deadline = time.monotonic() + 30
        while "AMI link up" not in kit(cfg, "status").stdout:
            assert time.monotonic() < deadline, daemon.output()
            time.sleep(0.3)
        assert daemon.stop() in (0, -15), daemon.output()
        # Beeline fails twice in a row
        for _ in range(2):
            r = kit(cfg, "beeline", "sync")
            assert r.returncode == 1, r.stdout + r.stderr
        # NiMbox cannot be reached: three calls wait in the outbox
        from asterisk_kit.nimbox import outbox
        from asterisk_kit.nimbox.call import Call
        c = config.load(str(cfg))
        conn = outbox.connect(c)
        for k in range(3):
            outbox.add_pending(conn, Call(f"2026-11-23T10:00:0{k}", "74950000000", f"10{k}", 30, "", f"l{k}",
                                          f"2026-11-23T10:00:0{k}"), "hook")
        st = kit(cfg, "status")
        assert st.returncode == 1, st.stdout
        text = st.stdout
        assert re.search(r"beeline\s+PROBLEM", text) and "failed 2 run(s) in a row" in text, text
        assert "500" in text and beeline.token not in text
        assert re.search(r"nimbox\s+PROBLEM", text) and "outbox: 3 call(s) waiting" in text, text
        assert re.search(r"blf\s+PROBLEM", text) and "daemon stopped" in text, text
        assert "plain HTTP" in text
        # the same on /status, for admins only
        web = WebServer(cfg).start()
        page = login(web.url, "boss").get(web.url + "/status", timeout=10)
        assert page.status_code == 200
        html = page.text
        assert 'id="status-beeline" class="problem"' in html and "failed 2 run(s) in a row" in html
        assert 'id="status-nimbox" class="problem"' in html and "outbox: 3 call(s) waiting" in html
        assert 'id="status-blf" class="problem"' in html and "daemon stopped" in html
        assert login(web.url, "clerk").get(web.url + "/status", timeout=10).status_code == 403
        assert requests.get(web.url + "/status", allow_redirects=False, timeout=10).status_code in (302, 303)
        # alerts: one mail per incident
        time.sleep(3.5)                              # blf_down_minutes = 0.05: 3 s
        r = kit(cfg, "alerts", "check")
        assert r.returncode == 0, r.stderr
        subjects = mailbox.subjects()
        assert len(subjects) == 3, subjects
        assert any("PROBLEM: beeline sync failed 2 times in a row" in s for s in subjects), subjects
        assert any("PROBLEM: NiMbox outbox holds 3 calls" in s for s in subjects), subjects
        assert any("PROBLEM: BLF daemon without AMI link" in s for s in subjects), subjects
        assert all(str(m["To"]) == "admin@example.com" for m in mailbox.messages)
        assert kit(cfg, "beeline", "sync").returncode == 1      # still failing: no second mail
        assert kit(cfg, "alerts", "check").returncode == 0
        assert len(mailbox.messages) == 3, mailbox.subjects()
        # the outbox drains: one recovery mail, then silence
        conn.execute("UPDATE nimbox_calls SET state = 'created'")
        conn.close()
        assert kit(cfg, "alerts", "check").returncode == 0
        assert len(mailbox.messages) == 4 and "RECOVERED: NiMbox outbox holds 3 calls" in mailbox.subjects()[3]
        assert kit(cfg, "alerts", "check").returncode == 0
        assert len(mailbox.messages) == 4, mailbox.subjects()
    finally:
        if web:
            web.stop()
        beeline.stop()
        ftp.stop()


def _user_add(cfg, user):
    import subprocess

    from testbed.kitcli import BIN
    return subprocess.run([str(BIN), "--config", str(cfg), "user", "add", user, "--password-stdin"],
                          input=PASSWORD + "\n", text=True, capture_output=True, timeout=60)


def test_killed_run_reads_as_killed_and_counts_as_failed(tmp_path):
    """A run killed mid-way leaves `running` with a dead pid: status calls it killed."""
    from asterisk_kit import jobruns
    cfg = config.parse_text(f"[general]\ndata_dir = {tmp_path}\n[asterisk]\nami_user = a\nami_secret = b\n[dialer]\n",
                            tmp_path / "kit.ini", environ={})
    conn = jobruns.connect(cfg)
    import subprocess
    p = subprocess.Popen(["true"])
    p.wait()
    conn.execute("INSERT INTO job_runs (job, host, pid, started, status) VALUES ('dialer tick', ?, ?, ?, 'running')",
                 (__import__("socket").gethostname(), p.pid, time.time()))
    s = jobruns.summary(conn, "dialer tick")
    assert s["failed_in_a_row"] == 1 and "killed" in s["last_error"]["error"]
