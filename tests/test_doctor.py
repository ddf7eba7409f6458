"""`asterisk-kit doctor` against the real testbed: ok when it is right, a clear line when it is not."""
import pytest

from testbed.asterisk import kit_section
from testbed.kitcli import kit

pytestmark = pytest.mark.asterisk


def cfg_file(tmp_path, asterisk_text):
    p = tmp_path / "kit.ini"
    p.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\n" + asterisk_text)
    return p


def lines(out):
    return {ln.split(":", 1)[0].split(None, 1)[1]: ln for ln in out.splitlines() if ":" in ln}


def test_doctor_ok_against_testbed(tmp_path, asterisk):
    r = kit(cfg_file(tmp_path, kit_section(asterisk)), "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    got = lines(r.stdout)
    assert got["ami"].startswith("ok") and "Asterisk 22." in got["ami"]
    assert got["spool"].startswith("ok")
    assert got["data dir"].startswith("ok") and got["log dir"].startswith("ok")
    assert r.stdout.rstrip().endswith("all checks passed")


def test_doctor_reports_wrong_ami_secret(tmp_path, asterisk):
    text = kit_section(asterisk).replace(asterisk.ami_secret, "wrong-secret")
    r = kit(cfg_file(tmp_path, text), "doctor")
    assert r.returncode == 1
    got = lines(r.stdout)
    assert got["ami"].startswith("FAILED")
    assert f"AMI login as '{asterisk.ami_user}' refused: Authentication failed" in got["ami"]
    assert "wrong-secret" not in r.stdout
    assert got["spool"].startswith("ok")  # one failure does not hide the other checks


def test_doctor_reports_nothing_listening_and_bad_spool(tmp_path, asterisk):
    from testbed.asterisk import free_port
    text = kit_section(asterisk).replace(f"ami_port = {asterisk.ami_port}", f"ami_port = {free_port()}")
    text = text.replace(f"spool_dir = {asterisk.spool_dir}", f"spool_dir = {tmp_path}/no-spool")
    r = kit(cfg_file(tmp_path, text), "doctor")
    assert r.returncode == 1
    got = lines(r.stdout)
    assert got["ami"].startswith("FAILED") and "cannot connect to AMI" in got["ami"]
    assert got["spool"].startswith("FAILED") and f"{tmp_path}/no-spool/outgoing does not exist" in got["spool"]


def test_doctor_checks_freepbx_mysql(tmp_path, asterisk, mariadb):
    recent = "SELECT COUNT(*) FROM cdr WHERE calldate >= NOW() - INTERVAL 1 DAY"
    mariadb.execute("INSERT INTO cdr (calldate, src, dst, uniqueid) VALUES (NOW(), '101', '84951234567', 'doc.1')",
                    database="asteriskcdrdb")
    try:
        n = mariadb.execute(recent, database="asteriskcdrdb")[0][0]   # other tests' rows may be there too
        assert n >= 1
        r = kit(cfg_file(tmp_path, kit_section(asterisk) + mariadb.mysql_section()), "doctor")
        assert r.returncode == 0, r.stdout + r.stderr
        got = lines(r.stdout)
        assert got["mysql"].startswith("ok") and f"asteriskcdrdb.cdr readable ({n} calls in 24 h)" in got["mysql"]

        bad = mariadb.mysql_section().replace(mariadb.kit_password, "wrong-password")
        r = kit(cfg_file(tmp_path, kit_section(asterisk) + bad), "doctor")
        assert r.returncode == 1
        got = lines(r.stdout)
        assert got["mysql"].startswith("FAILED") and "Access denied" in got["mysql"]
        assert "wrong-password" not in r.stdout
    finally:
        mariadb.execute("DELETE FROM cdr WHERE uniqueid = 'doc.1'", database="asteriskcdrdb")


def test_doctor_checks_memcached(tmp_path, asterisk):
    """A real memcached (Debian's) on a free loopback port: ok; nothing on the port: a clear failure."""
    import socket
    import subprocess
    import time

    from testbed.asterisk import free_port
    port = free_port()
    mc = subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody", "-m", "16"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and mc.poll() is None, "memcached did not start"
                time.sleep(0.1)
        text = kit_section(asterisk) + f"[memcached]\nservers = 127.0.0.1:{port}\ntimeout = 2\n"
        r = kit(cfg_file(tmp_path, text), "doctor")
        assert r.returncode == 0, r.stdout + r.stderr
        assert lines(r.stdout)["memcached"].startswith("ok") and f"127.0.0.1:{port} ok" in r.stdout
    finally:
        mc.terminate()
        mc.wait(10)
    r = kit(cfg_file(tmp_path, text), "doctor")
    assert r.returncode == 1
    got = lines(r.stdout)["memcached"]
    assert got.startswith("FAILED") and f"127.0.0.1:{port}" in got and "Connection" in got, got
