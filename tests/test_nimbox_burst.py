"""A burst of hangups on the real testbed loses no call, on either path: 100 calls hang up at the
same instant; each one ends up in NiMbox or in the outbox, with a log line of the hook naming it.
(Before: the FastAGI server's listen backlog of 5 made Asterisk give up connecting after 2 s for a
third of the calls, silently for the kit.) Also the FastAGI server's own guards: loopback only,
configured handlers only, the Asterisk user's processes only."""
from __future__ import annotations

import socket
import subprocess
import time

import pytest

from testbed.asterisk import free_port
from testbed.fakes.nimbox import FakeNimbox
from testbed.kitcli import BIN, kit
from testbed.nimbox import DIALPLAN, hangup_burst, nimbox_config

pytestmark = pytest.mark.asterisk


@pytest.fixture()
def fake():
    f = FakeNimbox().start()
    yield f
    f.stop()


def _install(tmp_path, asterisk, fake, **keys):
    asterisk.add_test_dialplan("nimbox", DIALPLAN, reload=False)
    cfg = nimbox_config(tmp_path, asterisk, fake.url, **keys)
    kit(cfg, "install", "--asterisk-etc", str(asterisk.etc_dir), "--no-initd", "--no-cron", "--reload", check=True)
    return cfg


def _start_fastagi(cfg, port):
    p = subprocess.Popen([str(BIN), "--config", str(cfg), "fastagi", "--listen", f"127.0.0.1:{port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "listening" in p.stdout.readline(), p.stderr.read() if p.poll() is not None else ""
    return p


def _check(r, n):
    assert len(r["ended"]) == n, f"{n - len(r['ended'])} call(s) never finished their hangup handlers"
    assert not r["lost"], f"lost {len(r['lost'])} of {n}: {sorted(r['lost'])}"
    assert r["logged"] == set(r["callers"]), f"no log line for {sorted(set(r['callers']) - r['logged'])}"


def test_100_simultaneous_hangups_fastagi(tmp_path, asterisk, fake):
    port = free_port()
    cfg = _install(tmp_path, asterisk, fake, fastagi=f"127.0.0.1:{port}")
    p = _start_fastagi(cfg, port)
    try:
        r = hangup_burst(asterisk, fake, cfg, 100, 7000)
    finally:
        p.terminate()
        p.wait(10)
    _check(r, 100)
    # Teardown bounded: the hook's timeout (1 s), plus waiting for a free slot, plus the load.
    assert max(r["held"]) < 1.0 * 2 + 5.0, sorted(r["held"])[-5:]


def test_100_simultaneous_hangups_classic_agi(tmp_path, asterisk, fake):
    cfg = _install(tmp_path, asterisk, fake)
    r = hangup_burst(asterisk, fake, cfg, 100, 8000, timeout=300)
    _check(r, 100)


def test_fastagi_guards(tmp_path, asterisk, fake):
    """Loopback only; only the handlers of configured capabilities; only the Asterisk user's (or
    root's) processes; the request is refused with a log line, nothing runs."""
    port = free_port()
    cfg = _install(tmp_path, asterisk, fake, fastagi=f"127.0.0.1:{port}")
    for listen in ("0.0.0.0:4573", "192.0.2.1:4573", f"[::]:{port}"):
        r = kit(cfg, "fastagi", "--listen", listen)
        assert r.returncode == 2 and "loopback only" in r.stderr, (listen, r.stderr)
    p = _start_fastagi(cfg, port)
    try:
        # No [dialer] section: dialer-event is not served (a forged dialer event does nothing).
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"agi_network: yes\nagi_network_script: dialer-event\nagi_arg_1: 1\n\n")
            s.settimeout(5)
            assert s.recv(100) == b""                                    # closed, no AGI command sent
        # A process of another user (nobody) cannot forge a call report.
        forge = ("import socket; s = socket.create_connection(('127.0.0.1', %d), timeout=5); "
                 "s.sendall(b'agi_network: yes\\nagi_network_script: nimbox-call\\nagi_arg_1: %d\\n"
                 "agi_arg_2: 666\\nagi_arg_3: 84956660000\\nagi_arg_4: 1\\nagi_arg_5: 1\\nagi_arg_6: ANSWERED\\n"
                 "agi_arg_7: \\nagi_arg_8: 1.1\\n\\n'); s.settimeout(5); print(repr(s.recv(100)))"
                 % (port, int(time.time())))
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3",
                            "-c", forge],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout.strip() == "b''", r.stdout + r.stderr
        time.sleep(1.5)
        assert not fake.arrivals
        log = "".join(f.read_text() for f in (tmp_path / "log").glob("fastagi-*.log"))
        assert "handler 'dialer-event' refused" in log and "not the Asterisk user" in log, log
        assert p.poll() is None
    finally:
        p.terminate()
        p.wait(10)
