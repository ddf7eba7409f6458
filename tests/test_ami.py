"""AMI clients and per-role AMI users against the real testbed Asterisk 22.

Each role logs in with the user of its shipped manager/*.conf block, exactly those classes, and its
work succeeds; with a user lacking the class, the refusal is reported as documented (install
--reload exits 1 with Asterisk's message, the dialer hands nothing over and logs an error, doctor
names the class, the BLF daemon logs it).
"""
from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import pytest

from asterisk_kit import amiroles
from asterisk_kit.ami import AmiActionError, AmiAuthError, AmiClient
from asterisk_kit.blf.amiconn import AmiConnection
from testbed.asterisk import REPO, Asterisk, kit_section
from testbed.blf import Daemon
from testbed.dialer import dialer_config, install_callee
from testbed.kitcli import BIN, kit
from testbed.memcached import Memcached

pytestmark = pytest.mark.asterisk

SECRET = "role-test-secret"
NOCLASS = "kit-noclass"           # logs in, has no class at all: every role's action is refused


def add_role_users(a: Asterisk) -> None:
    """The shipped blocks, as an admin would paste them, plus a user without classes. A role user
    another test added first (test_blf adds the BLF block from docs/blf.md) is replaced, so there is
    one block per user name and its secret is SECRET (testbed.blf.add_blf_ami_user reads it back)."""
    conf = a.etc_dir / "manager.conf"
    text = conf.read_text()
    if f"[{NOCLASS}]" in text:
        return
    for role in amiroles.ROLES:
        block = amiroles.snippet(role).replace("CHANGE-ME-long-random", SECRET)
        header = re.search(r"^\[[^\]]+\]", block, re.M).group(0)
        text = re.sub(r"^" + re.escape(header) + r"\n(?:(?!\[).*(?:\n|$))*", "", text, flags=re.M)
        text += "\n" + block
    text += f"\n[{NOCLASS}]\nsecret = {SECRET}\nread =\nwrite =\n"
    conf.write_text(text)
    a.cli("manager reload")


def user_of(role_name: str) -> str:
    role = next(r for r in amiroles.ROLES if r.name == role_name)
    return re.search(r"^\[([^\]]+)\]", amiroles.snippet(role), re.M).group(1)


def client(a: Asterisk, user: str, md5: bool = False) -> AmiClient:
    return AmiClient("127.0.0.1", a.ami_port, user, SECRET, timeout=5, md5=md5)


@pytest.fixture()
def roles(asterisk):
    add_role_users(asterisk)
    return asterisk


def cfg_with(tmp_path: Path, a: Asterisk, user: str, extra: str = "") -> Path:
    p = tmp_path / "kit.ini"
    base = kit_section(a).replace(f"ami_user = {a.ami_user}", f"ami_user = {user}") \
                         .replace(f"ami_secret = {a.ami_secret}", f"ami_secret = {SECRET}")
    p.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\nlevel = DEBUG\n" + base + extra)
    return p


# ---- the clients on the real Asterisk ----

def test_sync_client_plain_and_md5_login_lists_and_cyrillic(roles):
    a = roles
    a.add_test_dialplan("amicyr", "[ami-cyr]\nexten => s,1,Set(CALLERID(name)=Ольга Смирнова)\n"
                                  " same => n,Wait(20)\n")
    with AmiClient("127.0.0.1", a.ami_port, a.ami_user, a.ami_secret, md5=True) as ami:
        ami.action("Originate", Channel="Local/s@ami-cyr", Application="Wait", Data="20", Async="true")
        deadline = time.monotonic() + 10
        names = set()
        while "Ольга Смирнова" not in names and time.monotonic() < deadline:
            _, rows = ami.list_action("CoreShowChannels")
            names = {r.get("CallerIDName") for r in rows}
            time.sleep(0.2)
        assert "Ольга Смирнова" in names
        ami.command("channel request hangup all")
    with pytest.raises(AmiAuthError, match="Authentication failed"):
        AmiClient("127.0.0.1", a.ami_port, a.ami_user, "wrong", md5=True).connect()


def test_refused_command_raises_instead_of_passing(roles):
    """Before: `command` returned '' for `Response: Error` and callers took it as success."""
    with client(roles, NOCLASS) as ami:
        with pytest.raises(AmiActionError, match=r"Asterisk refused Command: Permission denied"):
            ami.command("dialplan reload")
        with pytest.raises(AmiActionError, match=r"Asterisk refused CoreShowChannels: Permission denied"):
            ami.list_action("CoreShowChannels")
        assert ami.action("Ping")["Ping"] == "Pong"


def test_failing_cli_command_keeps_its_output(roles):
    with client(roles, user_of("default")) as ami:
        assert "There is no existence of 'no-such-ctx' context" in ami.command("dialplan show no-such-ctx")
        with pytest.raises(AmiActionError, match="no-such-ctx"):
            ami.command("dialplan show no-such-ctx", check=True)


# ---- each role with exactly its shipped classes ----

def test_default_role_install_reload_and_doctor_with_write_command_only(roles, tmp_path):
    cfg = cfg_with(tmp_path, roles, user_of("default"), "[dialer]\n")
    r = kit(cfg, "install", "--asterisk-etc", str(roles.etc_dir), "--no-initd", "--no-cron", "--reload")
    assert r.returncode == 0 and "dialplan reloaded: Dialplan reloaded." in r.stdout, r.stdout + r.stderr
    r = kit(cfg, "doctor")
    line = next(x for x in r.stdout.splitlines() if " ami:" in x)
    assert line.startswith("ok") and "may run Command" in line and "Asterisk 22." in line, r.stdout


def test_dialer_role_counts_calls_with_write_reporting_only(roles, tmp_path):
    from asterisk_kit import config
    from asterisk_kit.dialer.callfile import Spool
    from asterisk_kit.dialer.runner import InProgress
    cfg_path = dialer_config(tmp_path, roles)
    cfg_path.write_text(cfg_path.read_text() + f"ami_user = {user_of('dialer')}\nami_secret = {SECRET}\n")
    cfg = config.load(str(cfg_path))
    import logging
    ip = InProgress(cfg, Spool(cfg), logging.getLogger("test"))
    try:
        assert ip.count() == (0, 0) and not ip.refused
        assert ip.ami.user == user_of("dialer")
    finally:
        ip.close()


def test_blf_role_lists_and_events_with_its_classes(roles):
    a = roles
    a.add_test_dialplan("amirole", "[ami-role-hints]\nexten => 901,hint,Custom:amirole901\n")
    events = []

    async def go():
        conn = AmiConnection("127.0.0.1", a.ami_port, user_of("blf"), SECRET, 5, events.append)
        await conn.connect()
        rows = await conn.list_action("ExtensionStateList")
        await conn.list_action("PresenceStateList")
        a.cli("devstate change Custom:amirole901 INUSE")
        for _ in range(50):
            if any(e.get("Exten") == "901" and e["Event"] == "ExtensionStatus" for e in events):
                break
            await asyncio.sleep(0.1)
        await conn.action("Ping")
        with pytest.raises(AmiActionError, match="Permission denied"):
            await conn.action("Command", Command="core show version")      # read-only: no command class
        await conn.close()
        return rows
    rows = asyncio.run(go())
    assert any(r.get("Exten") == "901" for r in rows)
    assert any(e.get("Exten") == "901" and e.get("StatusText") == "InUse" for e in events)


def test_doctor_checks_every_role_with_its_own_user(roles, tmp_path):
    extra = (f"[dialer]\nami_user = {user_of('dialer')}\nami_secret = {SECRET}\n"
             f"[blf]\nami_user = {user_of('blf')}\nami_secret = {SECRET}\n")
    from asterisk_kit import config
    cfg = config.load(str(cfg_with(tmp_path, roles, user_of("default"), extra)))
    got = {name: (ok, text) for name, ok, text in amiroles.doctor_checks(cfg)}
    assert set(got) == {"ami", "ami dialer", "ami blf"}
    assert all(ok for ok, _ in got.values()), got
    assert user_of("dialer") in got["ami dialer"][1] and "CoreShowChannels" in got["ami dialer"][1]


# ---- refusals reported as documented ----

def test_install_reload_refused_exits_nonzero_with_asterisks_message(roles, tmp_path):
    cfg = cfg_with(tmp_path, roles, NOCLASS)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "extensions_custom.conf").write_text("")
    r = kit(cfg, "install", "--asterisk-etc", str(tmp_path / "etc"), "--no-initd", "--no-cron", "--reload")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "dialplan reloaded" not in r.stdout
    assert "Asterisk refused Command: Permission denied" in r.stderr
    assert "Traceback" not in r.stderr


def test_doctor_names_the_missing_class_per_role(roles, tmp_path):
    extra = (f"[dialer]\nami_user = {NOCLASS}\nami_secret = {SECRET}\n"
             f"[blf]\nami_user = {NOCLASS}\nami_secret = {SECRET}\n")
    from asterisk_kit import config
    cfg = config.load(str(cfg_with(tmp_path, roles, NOCLASS, extra)))
    got = {name: (ok, text) for name, ok, text in amiroles.doctor_checks(cfg)}
    assert not any(ok for ok, _ in got.values()), got
    assert "may not run Command: add `write = command`" in got["ami"][1]
    assert "may not run CoreShowChannels: add `write = reporting`" in got["ami dialer"][1]
    assert "may not run ExtensionStateList: add `write = reporting`" in got["ami blf"][1]
    r = kit(cfg_with(tmp_path, roles, NOCLASS, f"[dialer]\nami_user = {NOCLASS}\nami_secret = {SECRET}\n"), "doctor")
    assert r.returncode != 0 and "add `write = command` to [kit-noclass]" in r.stdout, r.stdout


def test_dialer_pacing_refused_hands_nothing_over_and_logs_an_error(roles, tmp_path):
    install_callee(roles, tmp_path / "callee.log")
    cfg = dialer_config(tmp_path, roles)
    cfg.write_text(cfg.read_text() + f"ami_user = {NOCLASS}\nami_secret = {SECRET}\n")
    kit(cfg, "install", "--asterisk-etc", str(roles.etc_dir), "--no-initd", "--no-cron", "--reload", check=True)
    r = subprocess.run([str(BIN), "--config", str(cfg), "dialer", "import", "-"], input="89990000001\n89990000002\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    run = subprocess.Popen([str(BIN), "--config", str(cfg), "dialer", "run", "--now"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        assert run.poll() is None, run.communicate()
        assert not list((roles.spool_dir / "outgoing").glob("asterisk-kit-*")), "handed over without a count"
        kit(cfg, "dialer", "stop", check=True)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    log = "".join(p.read_text() for p in (tmp_path / "log").glob("dialer-*.log"))
    assert "ERROR" in log and "Asterisk refused CoreShowChannels: Permission denied" in log, log
    assert f"add `write = reporting` to [{NOCLASS}]" in log
    assert log.count("Asterisk refused CoreShowChannels") == 1          # once, not every second
    import sqlite3
    c = sqlite3.connect(tmp_path / "data" / "asterisk-kit.sqlite")
    assert c.execute("SELECT count(*) FROM dialer_calls WHERE spooled IS NOT NULL").fetchone()[0] == 0


def test_blf_daemon_reports_refused_login_and_refused_snapshot(roles, tmp_path):
    m = Memcached().start()
    try:
        for user, secret, expect in ((NOCLASS, "wrong", f"AMI login as '{NOCLASS}' refused: Authentication failed"),
                                     (NOCLASS, SECRET, "Asterisk refused ExtensionStateList: Permission denied; "
                                                       f"AMI user '{NOCLASS}' may not run ExtensionStateList: "
                                                       "add `write = reporting`")):
            d = tmp_path / user / secret
            d.mkdir(parents=True)
            cfg = d / "kit.ini"
            cfg.write_text(f"[general]\ndata_dir = {d}/data\n[log]\ndir = {d}/log\n" + kit_section(roles)
                           + f"[memcached]\nservers = {m.server}\n[blf]\nami_user = {user}\nami_secret = {secret}\n"
                           "reconnect_max_seconds = 1\n")
            daemon = Daemon(cfg).start()
            try:
                deadline = time.monotonic() + 20
                while expect not in daemon.output() and time.monotonic() < deadline:
                    time.sleep(0.3)
                assert expect in daemon.output(), daemon.output()
                assert "Traceback" not in daemon.output()
            finally:
                daemon.stop()
    finally:
        m.stop()


def test_shipped_blf_block_is_the_one_in_docs():
    doc = (REPO / "docs/blf.md").read_text()
    block = re.search(r"```(?:ini|conf)\n(\[asterisk-kit-blf\].*?)```", doc, re.S).group(1)
    shipped = amiroles.snippet(next(r for r in amiroles.ROLES if r.name == "blf"))
    assert block.strip() in shipped
