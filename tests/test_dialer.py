"""Autodialer against the real testbed Asterisk: call files, paced batches, outcomes, stop, crashes."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter

import pytest

from asterisk_kit.ami import AmiClient
from tests.support.dialer import dialer_config, dialled, install_callee
from tests.support.kitcli import BIN, kit

pytestmark = pytest.mark.asterisk


@pytest.fixture()
def dialer(tmp_path, asterisk):
    log = tmp_path / "callee.log"
    install_callee(asterisk, log)

    def make(**dialer_keys):
        cfg = dialer_config(tmp_path, asterisk, **dialer_keys)
        kit(cfg, "install", "--asterisk-etc", str(asterisk.etc_dir), "--no-initd", "--no-cron", "--reload",
            check=True)
        return cfg
    make.callee_log = log
    make.tmp = tmp_path
    return make


def db(cfg):
    c = sqlite3.connect(cfg.parent / "data" / "asterisk-kit.sqlite")
    c.row_factory = sqlite3.Row
    return c


def numbers(last_digits):
    return [f"8999{i:06d}{d}" for i, d in enumerate(last_digits)]


def import_lines(cfg, lines):
    r = subprocess.run([str(BIN), "--config", str(cfg), "dialer", "import", "-"], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r


class ChannelSampler(threading.Thread):
    """Counts the autodialer's Local channels through AMI while a run goes on."""

    def __init__(self, asterisk):
        super().__init__(daemon=True)
        self.ami = AmiClient("127.0.0.1", asterisk.ami_port, asterisk.ami_user, asterisk.ami_secret).connect()
        self.samples, self.stop = [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            _, ev = self.ami.list_action("CoreShowChannels")
            self.samples.append(sum(1 for e in ev if "@avtoobzvon" in e.get("Channel", "") and
                                    e.get("Channel", "").endswith(";1")))
            time.sleep(0.2)
        self.ami.close()


def test_run_over_twenty_numbers(dialer, asterisk):
    cfg = dialer(bundle=5, timeout=2, max_in_progress=6)
    digits = [1, 2, 3, 5] * 4 + [4, 6, 4, 1]
    nums = numbers(digits)
    # IVR rows: the last four carry a digit; 4 presses 1 (matches), 6 presses 2 (no match).
    lines = [n if i < 16 else f"{n},1,driver {i}" for i, n in enumerate(nums)]
    import_lines(cfg, lines)
    sampler = ChannelSampler(asterisk)
    sampler.start()
    t0 = time.time()
    r = kit(cfg, "dialer", "run", "--now", timeout=300)
    sampler.stop.set()
    sampler.join(5)
    assert r.returncode == 0, r.stdout + r.stderr
    conn = db(cfg)
    calls = {c["number"]: c for c in conn.execute("SELECT * FROM dialer_calls")}
    assert len(calls) == 20
    expected = {1: "answered", 2: "busy", 3: "no_answer", 5: "failed", 4: "answered", 6: "answered"}
    for n, d in zip(nums, digits):
        assert calls[n]["result"] == expected[d], (n, dict(calls[n]))
    ivr = {n: calls[n]["pressed"] for n in nums[16:]}
    assert ivr[nums[16]] == "1" and ivr[nums[18]] == "1" and ivr[nums[17]] == "2"
    # Every call file was picked up and every number reached the callee exactly once.
    assert Counter(dialled(dialer.callee_log)) == Counter(nums)
    assert not list((asterisk.spool_dir / "outgoing").glob("asterisk-kit-*"))
    # Batches: at most `bundle` files each, at least `timeout` seconds apart.
    batches = {}
    for c in calls.values():
        batches.setdefault(c["batch"], []).append(c["spooled"])
    assert all(len(v) <= 5 for v in batches.values())
    starts = [min(batches[b]) for b in sorted(batches)]
    assert len(starts) >= 4
    assert all(b - a >= 2.0 for a, b in zip(starts, starts[1:])), starts
    # The cap on calls in progress held (sampled in Asterisk during the run).
    assert sampler.samples and max(sampler.samples) <= 6, max(sampler.samples)
    assert max(sampler.samples) >= 2, "the sampler saw no calls: the test proves nothing"
    run = conn.execute("SELECT * FROM dialer_runs").fetchone()
    assert run["status"] == "done" and run["started"] >= t0 - 1
    rep = kit(cfg, "dialer", "report", "--csv", check=True)
    assert rep.stdout.count("\n") == 21 and f"{nums[16]},1,done,answered,1," in rep.stdout


def test_killed_run_never_dials_twice(dialer, asterisk):
    cfg = dialer(bundle=3, timeout=4, max_in_progress=20)
    nums = numbers([1] * 9)
    import_lines(cfg, nums)
    p = subprocess.Popen([str(BIN), "--config", str(cfg), "dialer", "run", "--now"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    conn = db(cfg)
    deadline = time.time() + 30
    while time.time() < deadline:
        n = conn.execute("SELECT count(*) FROM dialer_calls WHERE state != 'pending'").fetchone()[0]
        if n >= 3:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    # Simulate the worst instant too: a call file renamed into the spool but not yet recorded.
    from asterisk_kit.config import load
    from asterisk_kit.dialer.callfile import Renderer, Spool, file_name
    kcfg = load(str(cfg))
    run_id = conn.execute("SELECT id FROM dialer_runs").fetchone()[0]
    victim = conn.execute("SELECT number FROM dialer_calls WHERE state = 'pending' ORDER BY seq LIMIT 1").fetchone()[0]
    Spool(kcfg).hand_over(file_name(run_id, victim), Renderer(kcfg).render(run_id, victim))
    # ... and Asterisk finished that call before the run resumed (the file is archived, not in outgoing).
    archived = asterisk.spool_dir / "outgoing_done" / file_name(run_id, victim)
    deadline = time.time() + 30
    while not archived.exists():
        assert time.time() < deadline, "the victim's call never finished"
        time.sleep(0.1)
    # cron's next tick resumes the interrupted run
    r = kit(cfg, "dialer", "tick", timeout=300)
    assert r.returncode == 0, r.stderr
    time.sleep(1)
    assert Counter(dialled(dialer.callee_log)) == Counter(nums)
    rows = conn.execute("SELECT state, result FROM dialer_calls").fetchall()
    assert all(r["state"] == "done" and r["result"] == "answered" for r in rows), [tuple(r) for r in rows]
    assert conn.execute("SELECT status FROM dialer_runs").fetchone()[0] == "done"


def test_stop_withdraws_waiting_call_files(dialer, asterisk):
    cfg = dialer(bundle=2, timeout=30, max_in_progress=20, max_retries=3, retry_time=600)
    nums = numbers([3, 3, 1, 1, 1, 1])
    import_lines(cfg, nums)
    p = subprocess.Popen([str(BIN), "--config", str(cfg), "dialer", "run", "--now"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    conn = db(cfg)
    deadline = time.time() + 30
    while conn.execute("SELECT count(*) FROM dialer_calls WHERE state = 'spooled'").fetchone()[0] < 2:
        assert time.time() < deadline, "first batch never spooled"
        time.sleep(0.05)
    # The two unanswered calls ring 3 s, then Asterisk re-schedules them (retry in 600 s): they wait in the spool.
    time.sleep(6)
    waiting = list((asterisk.spool_dir / "outgoing").glob("asterisk-kit-*"))
    assert len(waiting) == 2
    r = kit(cfg, "dialer", "stop", check=True)
    assert "stop" in r.stdout
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert not list((asterisk.spool_dir / "outgoing").glob("asterisk-kit-*")), "waiting call files left behind"
    rows = {c["number"]: c for c in conn.execute("SELECT * FROM dialer_calls")}
    assert [rows[n]["result"] for n in nums] == ["withdrawn"] * 6
    assert conn.execute("SELECT status FROM dialer_runs").fetchone()[0] == "stopped"
    assert Counter(dialled(dialer.callee_log)) == Counter(nums[:2])


def test_dialplan_loads_cleanly(dialer, asterisk):
    before = len(asterisk.messages())
    dialer(connect_to="Local/100@kit-test-callee")
    for ctx in ("avtoobzvon", "avtoobzvon-ivr"):
        shown = asterisk.cli(f"dialplan show {ctx}")
        assert "dialer-event" in shown and "'play' =>" in shown
    new = asterisk.messages()[before:]
    assert not [l for l in new.splitlines() if "WARNING[" in l or "ERROR[" in l], new
