"""Autodialer against the real testbed Asterisk: call files, paced batches, outcomes, stop, crashes."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from itertools import pairwise

import pytest

from asterisk_kit.ami import AmiClient
from testbed.dialer import dialled
from testbed.kitcli import BIN, kit

pytestmark = pytest.mark.asterisk


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
    log_before = len(asterisk.messages())
    t0 = time.time()
    r = kit(cfg, "dialer", "run", "--now", timeout=300)
    sampler.stop.set()
    sampler.join(5)
    assert r.returncode == 0, r.stdout + r.stderr
    conn = db(cfg)
    calls = {c["number"]: c for c in conn.execute("SELECT * FROM dialer_calls")}
    assert len(calls) == 20
    expected = {1: "answered", 2: "busy", 3: "no_answer", 5: "failed", 4: "answered", 6: "answered"}
    for n, d in zip(nums, digits, strict=True):
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
    assert all(len(v) <= 5 for v in batches.values()) and len(batches[1]) == 5     # full bundles, never more
    starts = [min(batches[b]) for b in sorted(batches)]
    assert len(starts) >= 4
    assert all(b - a >= 2.0 for a, b in pairwise(starts)), starts
    # The cap on calls in progress held (sampled in Asterisk during the run).
    assert sampler.samples and max(sampler.samples) <= 6, max(sampler.samples)
    assert max(sampler.samples) >= 2, "the sampler saw no calls: the test proves nothing"
    run = conn.execute("SELECT * FROM dialer_runs").fetchone()
    assert run["status"] == "done" and run["started"] >= t0 - 1
    # The shipped dialplan ran 20 calls (plain and IVR, AGI reports) without a warning or error.
    during = asterisk.messages()[log_before:]
    assert "dialer-event" in during or "avtoobzvon" in during
    assert not [line for line in during.splitlines() if "WARNING[" in line or "ERROR[" in line], during[-3000:]
    rep = kit(cfg, "dialer", "report", "--csv", check=True)
    assert rep.stdout.count("\n") == 21 and f"{nums[16]},1,done,answered,1," in rep.stdout
    # ... and on the run's page.
    shown = run_page_results(cfg, run["id"])
    assert shown == {n: (expected[d], calls[n]["pressed"] or "") for n, d in zip(nums, digits, strict=True)}


def run_page_results(cfg, run_id):
    """{number: (data-result, pressed)} as the logged-in run page shows them (real `asterisk-kit web`)."""
    import re

    import requests

    from testbed.webserver import WebServer
    subprocess.run([str(BIN), "--config", str(cfg), "user", "add", "olga", "--password-stdin"],
                   input="dialer pass 1\n", text=True, check=True, capture_output=True, timeout=60)
    srv = WebServer(cfg).start()
    try:
        s = requests.Session()
        tok = re.search(r'name="csrf" value="([^"]+)"', s.get(srv.url + "/login", timeout=10).text).group(1)
        s.post(srv.url + "/login", data={"csrf": tok, "user": "olga", "password": "dialer pass 1"}, timeout=10)
        page = s.get(srv.url + f"/dialer/runs/{run_id}", timeout=10)
        assert page.status_code == 200
        row = r'<tr data-number="([0-9]+)">.*?data-result="([a-z_]+)".*?<td class="pressed">([0-9]*)</td>'
        return {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(row, page.text, re.S)}
    finally:
        srv.stop()


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
    Spool(kcfg).hand_over([(file_name(run_id, victim), Renderer(kcfg).render(run_id, victim))])
    # ... and Asterisk finished that call before the run resumed (the file is archived, not in outgoing).
    archived = asterisk.spool_dir / "outgoing_done" / file_name(run_id, victim)
    deadline = time.time() + 30
    while not archived.exists():
        assert time.time() < deadline, "the victim's call never finished"
        time.sleep(0.1)
    # cron's next tick resumes the interrupted run
    r = kit(cfg, "dialer", "tick", timeout=300)
    assert r.returncode == 0, r.stderr
    assert Counter(dialled(dialer.callee_log)) == Counter(nums)
    rows = conn.execute("SELECT state, result FROM dialer_calls").fetchall()
    assert all(r["state"] == "done" and r["result"] == "answered" for r in rows), [tuple(r) for r in rows]
    assert conn.execute("SELECT status FROM dialer_runs").fetchone()[0] == "done"


def test_killed_again_and_again_at_random_instants(dialer, asterisk):
    """SIGKILL the run process at random moments (handing over, pausing, collecting), resume with cron's
    tick each time: in the end every number was dialled exactly once and has its outcome."""
    import random
    rnd = random.Random(20261123)
    cfg = dialer(bundle=2, timeout=2, max_in_progress=20)
    nums = numbers([1, 2] * 8)
    import_lines(cfg, nums)
    args, kills = ["dialer", "run", "--now"], 0
    conn = db(cfg)
    for _ in range(6):
        p = subprocess.Popen([str(BIN), "--config", str(cfg), *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        args = ["dialer", "tick"]
        try:
            p.wait(rnd.uniform(0.3, 2.5))
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait(10)
            kills += 1
    assert kills >= 4, "the run ended before it could be killed: the test proves little"
    r = kit(cfg, "dialer", "tick", timeout=300)
    assert r.returncode == 0, r.stderr
    assert conn.execute("SELECT status FROM dialer_runs").fetchone()[0] == "done"
    assert Counter(dialled(dialer.callee_log)) == Counter(nums)
    rows = {c["number"]: c["result"] for c in conn.execute("SELECT number, result FROM dialer_calls")}
    assert rows == {n: ("answered" if n.endswith("1") else "busy") for n in nums}
    assert not list((asterisk.spool_dir / "outgoing").glob("asterisk-kit-*"))


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
    # The two unanswered calls ring 3 s, then the kit schedules their retry (in 600 s): they wait in the
    # store as pending with next_at, their first call files archived and collected.
    def rescheduled():
        later = time.time() + 300
        return (conn.execute("SELECT count(*) FROM dialer_calls WHERE state = 'pending' AND next_at > ?",
                             (later,)).fetchone()[0] == 2
                and not list((asterisk.spool_dir / "outgoing").glob("asterisk-kit-*")))
    deadline = time.time() + 30
    while not rescheduled():
        assert time.time() < deadline, "the kit never scheduled a retry of the unanswered calls"
        time.sleep(0.2)
    r = kit(cfg, "dialer", "stop", check=True)
    assert "stop" in r.stdout
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert not list((asterisk.spool_dir / "outgoing").glob("asterisk-kit-*")), "waiting call files left behind"
    rows = {c["number"]: c for c in conn.execute("SELECT * FROM dialer_calls")}
    assert [rows[n]["result"] for n in nums] == ["withdrawn"] * 6
    assert conn.execute("SELECT status FROM dialer_runs").fetchone()[0] == "stopped"
    assert Counter(dialled(dialer.callee_log)) == Counter(nums[:2])


def test_stop_lets_calls_in_progress_finish(dialer, asterisk):
    """A call Asterisk is dialling when Stop comes is not torn out of the spool: its real outcome is
    recorded, and Asterisk is left no half call file to re-create and retry."""
    cfg = dialer(bundle=2, timeout=30, max_in_progress=20, max_retries=2, retry_time=600)
    nums = numbers([1, 1, 1, 1])
    import_lines(cfg, nums)
    p = subprocess.Popen([str(BIN), "--config", str(cfg), "dialer", "run", "--now"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    conn = db(cfg)
    deadline = time.time() + 30
    while sorted(dialled(dialer.callee_log)) != nums[:2]:      # both calls of batch 1 reached the callee
        assert time.time() < deadline, dialled(dialer.callee_log)
        time.sleep(0.05)
    kit(cfg, "dialer", "stop", check=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    rows = {c["number"]: c for c in conn.execute("SELECT * FROM dialer_calls")}
    assert [rows[n]["result"] for n in nums] == ["answered", "answered", "withdrawn", "withdrawn"], \
        [dict(rows[n]) for n in nums]
    assert [rows[n]["file_status"] for n in nums[:2]] == ["Completed", "Completed"]
    assert conn.execute("SELECT status FROM dialer_runs").fetchone()[0] == "stopped"
    assert not list((asterisk.spool_dir / "outgoing").glob("asterisk-kit-*"))
    assert not list((asterisk.spool_dir / "outgoing_done").glob("asterisk-kit-*"))
    assert Counter(dialled(dialer.callee_log)) == Counter(nums[:2])


def test_dialplan_loads_cleanly(dialer, asterisk):
    before = len(asterisk.messages())
    dialer(connect_to="Local/100@kit-test-callee")
    for ctx in ("avtoobzvon", "avtoobzvon-ivr"):
        shown = asterisk.cli(f"dialplan show {ctx}")
        assert "dialer-event" in shown and "'play' =>" in shown
    new = asterisk.messages()[before:]
    assert not [line for line in new.splitlines() if "WARNING[" in line or "ERROR[" in line], new


# ---- call file injection (no Asterisk needed) ----------------------------------------------------

def asterisk_reads(text):
    """Read a call file the way Asterisk's pbx_spool does: split on newlines, drop comments after # or ;,
    cut at 255 bytes, `Key: value` pairs."""
    pairs = []
    for line in text.replace("\r", "\n").split("\n"):
        line = line.encode()[:255].decode(errors="ignore")
        for c in "#;":
            line = line.split(c, 1)[0]
        if ":" in line:
            k, v = line.split(":", 1)
            pairs.append((k.strip(), v.strip()))
    return pairs


NASTY = ["89990000001\nApplication: System", "89990000001\rChannel: x", "8999000000;1", "8999000000#1",
         "89990000001\x00", "\u202e89990000001", "８９９９００００００１", "89990000001 ; Setvar: x=1",
         "+7999000000\u2028Channel: y", "1" * 300, "", "   ", "Channel: Local/1@evil"]


@pytest.mark.parametrize("raw", NASTY)
def test_nasty_numbers_are_rejected(raw):
    from asterisk_kit.dialer.numbers import BadNumber, NumberRules
    with pytest.raises(BadNumber):
        NumberRules().number(raw)


@pytest.mark.parametrize("raw", ["1 2", "1;", "#", "*", "12", "١", "1\nSetvar: a=b"])
def test_nasty_digits_are_rejected(raw):
    from asterisk_kit.dialer.numbers import BadNumber, digit
    with pytest.raises(BadNumber):
        digit(raw)


def test_rendered_call_files_mean_exactly_what_was_intended(tmp_path):
    from asterisk_kit.config import parse_text
    from asterisk_kit.dialer.callfile import Renderer
    from asterisk_kit.dialer.numbers import NumberRules
    cfg = parse_text(f"[general]\ndata_dir = {tmp_path}\n[asterisk]\nami_user = a\nami_secret = b\n"
                     f"spool_dir = {tmp_path}/spool\n[dialer]\ncallerid = \"Office\" <84951234567>\n"
                     "max_retries = 2\nretry_time = 60\nwait_time = 30\n", tmp_path / "kit.ini")
    r = Renderer(cfg)
    number = NumberRules().number("+7 (999) 123-45-67")
    plain = asterisk_reads(r.render(5, number))
    # Retries are the kit's (re-spooled after the outcome's delay): Asterisk never retries on its own.
    assert plain == [("Channel", "local/89991234567@avtoobzvon"), ("CallerID", '"Office" <84951234567>'),
                     ("MaxRetries", "0"), ("RetryTime", "60"), ("WaitTime", "30"), ("Context", "avtoobzvon"),
                     ("Extension", "play"), ("Priority", "1"), ("Setvar", "KIT_RUN=5"),
                     ("Setvar", "CALLEE=89991234567"), ("Setvar", "KIT_SOUND=custom/avtoobzvon"), ("Archive", "yes")]
    ivr = dict((k, v) for k, v in asterisk_reads(r.render(5, number, "3")) if k != "Setvar")
    assert ivr["Channel"] == "local/89991234567@avtoobzvon-ivr" and ivr["Context"] == "avtoobzvon-ivr"
    assert ("Setvar", "dtmf=3") in asterisk_reads(r.render(5, number, "3"))
    # The renderer itself refuses anything but digits, whatever the caller passes.
    from asterisk_kit.dialer.callfile import CallFileError
    for bad in ("8999\nApplication: System", "8999;", ""):
        with pytest.raises(CallFileError):
            r.render(5, bad)
    with pytest.raises(CallFileError):
        r.render(5, number, "1\nSetvar: x=1")


def plain_config(tmp_path):
    cfg = tmp_path / "kit.ini"
    cfg.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\n[asterisk]\nami_user = a\n"
                   f"ami_secret = b\nspool_dir = {tmp_path}/spool\nrun_user =\n[dialer]\n")
    return cfg


def assert_call_files_mean_only(cfg_path, expected):
    """Every stored phone renders to a call file that Asterisk reads as exactly the intended pairs."""
    from asterisk_kit.config import load
    from asterisk_kit.dialer import store
    from asterisk_kit.dialer.callfile import Renderer
    kcfg = load(str(cfg_path))
    conn = store.connect(kcfg)
    stored = {r["number"]: r["digit"] for r in store.phones(conn)}
    assert stored == expected
    r, d = Renderer(kcfg), kcfg["dialer"]
    for number, digit in stored.items():
        pairs = asterisk_reads(r.render(7, number, digit))
        ctx = "avtoobzvon-ivr" if digit else "avtoobzvon"
        want = {("Channel", f"local/{number}@{ctx}"), ("Context", ctx), ("Extension", "play"), ("Priority", "1"),
                ("Setvar", f"CALLEE={number}"), ("Setvar", "KIT_RUN=7"), ("Archive", "yes"),
                ("MaxRetries", "0"), ("RetryTime", str(d["retry_time"])),
                ("WaitTime", str(d["wait_time"])), ("Setvar", f"KIT_SOUND={d['sound']}")}
        if d["callerid"]:
            want.add(("CallerID", d["callerid"]))
        if digit:
            want |= {("Setvar", f"dtmf={digit}"), ("Setvar", f"KIT_PROMPT={d['ivr_prompt']}")}
        assert set(pairs) == want and len(pairs) == len(want), (number, pairs)


def test_injection_through_the_import_command(tmp_path):
    """CSV / text and todo.json imports: lines carrying call-file syntax are rejected, nothing of them is
    stored, and what is stored renders to call files that mean exactly what was intended."""
    import json
    cfg = plain_config(tmp_path)
    text = ("89990000001;1;ok\n"
            "89990000002\rChannel: Local/1@evil\n"           # a bare CR: Asterisk would split the line here
            "89990000003;1\nApplication: System\n"
            "89990000004;1 ;Setvar: x=1\n"                     # the third field is a comment
            "89990000005;#\n"
            "89990000006;;a comment; Application: System # x\n"   # comments never reach a call file
            "8999000000\u20287\n"
            "８９９９００００００８\n"
            "89990000009" + "0" * 300 + "\n")
    r = subprocess.run([str(BIN), "--config", str(cfg), "dialer", "import", "-"], input=text, capture_output=True,
                       text=True, timeout=60)
    # Lines are split the way Asterisk would split them (CR, U+2028 too): the injected part is a line of
    # its own and is rejected; the number before it is an ordinary number (`8999000000` before U+2028 is a
    # 10-digit number of its own: it gets the trunk prefix 8, the `7` after it is rejected).
    assert r.returncode == 1 and "6 added, 0 updated, 6 rejected" in r.stdout, r.stdout + r.stderr
    for bad in ("'Channel: Local/1@evil'", "'Application: System'", "'89990000005;#'", "'８９９９", "'89990000009000"):
        assert bad in r.stderr, (bad, r.stderr)
    todo = tmp_path / "todo.json"
    todo.write_text(json.dumps([{"number": "89990000011\nApplication: System", "dtmf": ""},
                                {"number": "89990000012", "dtmf": "1\nSetvar: x=1"},
                                {"number": "89990000013", "dtmf": ";"},
                                {"number": 89990000014, "dtmf": 2},
                                {"number": "+7 999 000-00-15", "dtmf": None, "comment": "x\nChannel: y"},
                                ["89990000016"], None]))
    r = kit(cfg, "dialer", "import", str(todo))
    assert r.returncode == 1 and "2 added" in r.stdout and "5 rejected" in r.stdout, r.stdout + r.stderr
    assert_call_files_mean_only(cfg, {"89990000001": "1", "89990000002": "", "89990000003": "1", "89990000004": "1",
                                      "89990000006": "", "88999000000": "", "89990000014": "2", "89990000015": ""})


def test_custom_template_cannot_produce_a_bad_line(tmp_path):
    from asterisk_kit.config import parse_text
    from asterisk_kit.dialer.callfile import CallFileError, Renderer
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "plain.call.j2").write_text("Channel: local/{{ number }}@avtoobzvon\nApplication: System\nData: rm -rf /\n"
                                        "Context: avtoobzvon ; comment\n")
    cfg = parse_text(f"[general]\ndata_dir = {tmp_path}\n[asterisk]\nami_user = a\nami_secret = b\n"
                     f"[dialer]\ntemplates_dir = {tdir}\n", tmp_path / "kit.ini")
    with pytest.raises(CallFileError, match="not allowed"):
        Renderer(cfg).render(1, "89990000001")


# (`"a" <1> # c` is the value `"a" <1>` and a comment: `;`/`#` after whitespace start one, see config.md.)
@pytest.mark.parametrize("value", ['"x" <1>;Channel: y', '"a" <1>#c', "<12>\\nChannel: x", '"Name;" <1>'])
def test_callerid_with_call_file_syntax_is_a_config_error(tmp_path, value):
    from asterisk_kit.config import ConfigError, parse_text
    with pytest.raises(ConfigError, match=r"\[dialer\] callerid"):
        parse_text(f"[asterisk]\nami_user = a\nami_secret = b\n[dialer]\ncallerid = {value}\n", tmp_path / "kit.ini")


def test_old_tool_files_round_trip(tmp_path, dialer):
    import json
    cfg = dialer()
    todo = tmp_path / "todo.json"
    todo.write_text(json.dumps([{"number": "+79990000001", "dtmf": "1", "comment": "A"}, "89990000002",
                                {"number": "bad"}, {"number": "89990000002", "dtmf": "", "comment": "B"}]))
    r = kit(cfg, "dialer", "import", str(todo))
    assert r.returncode == 1 and "rejected line 3" in r.stderr and "1 rejected" in r.stdout
    out = json.loads(kit(cfg, "dialer", "export", "phones", check=True).stdout)
    assert out == [{"number": "89990000001", "dtmf": "1", "comment": "A"},
                   {"number": "89990000002", "dtmf": "", "comment": "B"}]
    sched = tmp_path / "schedule.json"
    sched.write_text(json.dumps({"mon": "9:05", "fri": "18:00", "sun": "off"}))
    kit(cfg, "dialer", "import", "--schedule", str(sched), check=True)
    got = json.loads(kit(cfg, "dialer", "export", "schedule", check=True).stdout)
    assert got == {"mon": "09:05", "tue": "off", "wed": "off", "thu": "off", "fri": "18:00", "sat": "off", "sun": "off"}
    sched.write_text(json.dumps({"mon": "9:65"}))
    r = kit(cfg, "dialer", "import", "--schedule", str(sched))
    assert r.returncode == 1 and "mon" in r.stderr


def test_schedule_due_once_per_day_and_never_late(tmp_path):
    import datetime as dt

    from asterisk_kit.config import parse_text
    from asterisk_kit.dialer import schedule, store
    from asterisk_kit.dialer.numbers import Entry
    cfg = parse_text(f"[general]\ndata_dir = {tmp_path}/a\ntimezone = Europe/Moscow\n[asterisk]\nami_user = a\n"
                     "ami_secret = b\n[dialer]\ngrace_minutes = 30\n", tmp_path / "kit.ini")
    conn = store.connect(cfg)
    store.upsert_phones(conn, [Entry("89990000001")])
    store.set_schedule(conn, {0: "09:00", 1: None})
    tz = schedule.tz(cfg)
    monday = dt.datetime(2026, 11, 23, 8, 59, tzinfo=tz)
    assert schedule.due(cfg, conn, monday) is None
    assert schedule.due(cfg, conn, monday.replace(hour=9, minute=0)) == "2026-11-23"
    run_id = store.create_run(conn, "schedule", "2026-11-23")
    assert schedule.due(cfg, conn, monday.replace(hour=9, minute=5)) is None       # once per day
    with pytest.raises(store.RunExists):
        store.create_run(conn, "manual", "2026-11-23")                               # one active run at a time
    store.request_stop(conn, run_id)
    assert store.run(conn, run_id)["status"] == "stopped"                            # queued: withdrawn at once
    with pytest.raises(store.RunExists):
        store.create_run(conn, "schedule", "2026-11-23")                             # the day's run was used
    assert schedule.due(cfg, conn, dt.datetime(2026, 11, 24, 12, 0, tzinfo=tz)) is None   # Tuesday off
    # Next Monday the PBX was down until 09:31: the run is recorded as missed, not started late.
    assert schedule.due(cfg, conn, dt.datetime(2026, 11, 30, 9, 31, tzinfo=tz)) is None
    missed = conn.execute("SELECT status FROM dialer_runs WHERE day = '2026-11-30'").fetchone()
    assert missed["status"] == "missed"
    assert schedule.due(cfg, conn, dt.datetime(2026, 11, 30, 9, 32, tzinfo=tz)) is None


def test_doctor_checks_the_dialer(dialer, asterisk):
    cfg = dialer()
    r = kit(cfg, "doctor")
    assert r.returncode == 0, r.stdout
    lines = {line.split(":", 1)[0].split(None, 1)[1]: line for line in r.stdout.splitlines() if ":" in line}
    assert lines["dialer templates"].startswith("ok") and lines["dialer dialplan"].startswith("ok")
    tdir = dialer.tmp / "tpl"
    tdir.mkdir()
    (tdir / "plain.call.j2").write_text("Channel: local/{{ number }}@avtoobzvon\nApplication: System\n")
    cfg.write_text(cfg.read_text() + f"templates_dir = {tdir}\n")
    r = kit(cfg, "doctor")
    assert r.returncode == 1
    lines = {line.split(":", 1)[0].split(None, 1)[1]: line for line in r.stdout.splitlines() if ":" in line}
    assert lines["dialer templates"].startswith("FAILED") and "Application: System" in lines["dialer templates"]


def test_number_rules_are_configurable_but_never_wider_than_digits(tmp_path):
    from asterisk_kit.config import parse_text
    from asterisk_kit.dialer.numbers import BadNumber, NumberRules
    cfg = parse_text(f"[general]\ndata_dir = {tmp_path}\n[asterisk]\nami_user = a\nami_secret = b\n[dialer]\n"
                     "number_pattern = (10|20)[0-9]{2}|9[0-9]{10}\nnormalise_plus7 = no\n", tmp_path / "kit.ini")
    rules = NumberRules.from_config(cfg)
    assert rules.number("1012") == "1012" and rules.number("9 999 000-00-01") == "99990000001"
    for bad in ("89990000001", "+79990000001", "3012", "101"):     # not the configured format; +7 kept as is
        with pytest.raises(BadNumber):
            rules.number(bad)
    # A pattern that would admit call-file syntax cannot widen the digits-only allow-list.
    wide = NumberRules(r".*")
    assert wide.number("12345") == "12345"
    for bad in ("1;2", "1#", "1\nChannel: x", "+12", "1" * 21):
        with pytest.raises(BadNumber):
            wide.number(bad)


def test_lock_keeps_to_one_run_process_and_status_reports(tmp_path):
    from asterisk_kit.lock import JobLock
    cfg = plain_config(tmp_path)
    import_lines(cfg, ["89990000001", "89990000002,1"])
    st = kit(cfg, "dialer", "status", check=True).stdout
    assert "numbers: 2 (1 with an IVR digit)" in st and "no active run" in st
    with JobLock(tmp_path / "data", "dialer"):
        r = kit(cfg, "dialer", "run", "--now")
        assert r.returncode == 75 and "dialer" in r.stderr, r.stdout + r.stderr
        assert kit(cfg, "dialer", "tick").returncode == 0       # cron's tick just leaves it to the other process
    assert db(cfg).execute("SELECT count(*) FROM dialer_runs").fetchone()[0] == 0
    assert not (tmp_path / "spool" / "outgoing").exists() or not list((tmp_path / "spool" / "outgoing").iterdir())


def test_ivr_connects_the_callee_only_when_the_digit_matches(dialer, asterisk, tmp_path):
    connected = tmp_path / "connected.log"
    asterisk.add_test_dialplan("dialer_connected", f"[kit-test-connected]\n"
                               f"exten => _X.,1,System(echo ${{EXTEN}} >> {connected})\n"
                               " same => n,Answer()\n same => n,Wait(1)\n same => n,Hangup()\n")
    cfg = dialer(bundle=5, timeout=0, max_in_progress=10, connect_to="Local/${CALLEE}@kit-test-connected")
    match, other, wrong = numbers([4, 6, 4])    # 4 presses 1, 6 presses 2
    import_lines(cfg, [f"{match},1", f"{other},1", f"{wrong},2"])
    r = kit(cfg, "dialer", "run", "--now", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {c["number"]: (c["result"], c["pressed"]) for c in db(cfg).execute("SELECT * FROM dialer_calls")}
    assert rows == {match: ("answered", "1"), other: ("answered", "2"), wrong: ("answered", "1")}
    assert dialled(connected) == [match]


def test_call_files_are_staged_then_renamed_and_given_to_the_asterisk_user(tmp_path, monkeypatch):
    """Written in spool/tmp (same file system), renamed into outgoing/ whole; as root, owned by run_user."""
    import pwd

    from asterisk_kit.config import parse_text
    from asterisk_kit.dialer.callfile import Renderer, Spool, file_name
    if os.geteuid() != 0:
        pytest.skip("needs root (CI runs as root)")
    nobody = pwd.getpwnam("nobody")
    cfg = parse_text(f"[general]\ndata_dir = {tmp_path}/data\n[asterisk]\nami_user = a\nami_secret = b\n"
                     f"spool_dir = {tmp_path}/spool\nrun_user = nobody\n[dialer]\n", tmp_path / "kit.ini")
    (tmp_path / "spool" / "outgoing").mkdir(parents=True)
    r, spool = Renderer(cfg), Spool(cfg)
    files = [(file_name(3, n), r.render(3, n)) for n in ("89990000001", "89990000002")]
    renamed = []
    real_rename = os.rename

    def watch(src, dst):
        renamed.append((os.fspath(src), os.fspath(dst), os.stat(src).st_ino))
        real_rename(src, dst)
    import asterisk_kit.dialer.callfile as callfile
    monkeypatch.setattr(callfile.os, "rename", watch)
    spool.hand_over(files)
    monkeypatch.undo()
    assert [(os.path.dirname(a), os.path.dirname(b)) for a, b, _ in renamed] == \
        [(str(tmp_path / "spool" / "tmp"), str(tmp_path / "spool" / "outgoing"))] * 2
    assert not list((tmp_path / "spool" / "tmp").iterdir())
    for (name, text), (_, _, ino) in zip(files, renamed, strict=True):
        p = tmp_path / "spool" / "outgoing" / name
        assert p.read_text() == text and os.stat(p).st_ino == ino          # the same file, moved whole
        assert (os.stat(p).st_uid, os.stat(p).st_gid) == (nobody.pw_uid, nobody.pw_gid)


def test_tick_starts_todays_scheduled_run_once(dialer, asterisk, tmp_path):
    """cron's `dialer tick`, end to end: the run is started when its time has come, and only once."""
    import datetime as dt
    import json

    from testbed.clock import away_from_midnight
    cfg = dialer(bundle=5, timeout=0)
    nums = numbers([1, 2])
    import_lines(cfg, nums)
    away_from_midnight(margin=300)    # the tick must see the same weekday as the schedule written here
    now = dt.datetime.now().astimezone()
    start = max(now - dt.timedelta(minutes=1), now.replace(hour=0, minute=0))
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[start.weekday()]
    sched = tmp_path / "schedule.json"
    sched.write_text(json.dumps({day: start.strftime("%H:%M")}))
    kit(cfg, "dialer", "import", "--schedule", str(sched), check=True)
    r = kit(cfg, "dialer", "tick", timeout=300)
    assert r.returncode == 0, r.stderr
    runs = [tuple(x) for x in db(cfg).execute("SELECT trigger, day, status FROM dialer_runs")]
    assert runs == [("schedule", start.date().isoformat(), "done")]
    assert kit(cfg, "dialer", "tick").returncode == 0
    assert db(cfg).execute("SELECT count(*) FROM dialer_runs").fetchone()[0] == 1
    assert Counter(dialled(dialer.callee_log)) == Counter(nums)
