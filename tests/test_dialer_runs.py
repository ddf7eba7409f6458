"""A run's life against the real testbed Asterisk: retries are waited for, outcomes show during the pauses,
a run Asterisk does not serve ends with an error, a row that cannot be rendered fails alone."""
from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from collections import Counter
from itertools import pairwise

import pytest

from testbed.kitcli import BIN, kit
from tests.test_dialer import db, import_lines, numbers

pytestmark = pytest.mark.asterisk


class CalleeWatch(threading.Thread):
    """When each call reached the test callee (its log gets one line per call), to 0.05 s."""

    def __init__(self, log):
        super().__init__(daemon=True)
        self.log, self.seen, self.stop = log, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            lines = self.log.read_text().split() if self.log.exists() else []
            for n in lines[len(self.seen):]:
                self.seen.append((n, time.time()))
            time.sleep(0.05)


def test_retries_are_the_kits_and_spaced_by_the_delay(dialer, asterisk):
    """max_retries = 2, retry_time = 15: the kit re-spools a not answered number 15 s after each outcome
    (call files say MaxRetries: 0, so pbx_spool's retry race cannot shorten the spacing), the run stays
    open until the last attempt, and nothing of the run dials after it closed. Every attempt has its own
    call file with the same caller ID."""
    cfg = dialer(bundle=5, timeout=1, max_retries=2, retry_time=15, result_wait_seconds=30, ring_seconds=3)
    (never, answers) = numbers([3, 1])           # ...3 rings without an answer, ...1 answers
    import_lines(cfg, [never, answers])
    watch = CalleeWatch(dialer.callee_log)
    watch.start()
    r = kit(cfg, "dialer", "run", "--now", timeout=300)
    closed = time.time()
    assert r.returncode == 0, r.stdout + r.stderr
    outgoing = asterisk.spool_dir / "outgoing"
    assert not list(outgoing.glob("asterisk-kit-*")), "a call file of the closed run is still in the spool"
    time.sleep(20)                                # longer than the delay: a left-over retry would dial now
    watch.stop.set()
    watch.join(5)
    assert not [n for n, t in watch.seen if t > closed], watch.seen
    assert Counter(n for n, _ in watch.seen) == Counter({never: 3, answers: 1})
    rows = {c["number"]: c for c in db(cfg).execute("SELECT * FROM dialer_calls")}
    assert (rows[never]["result"], rows[never]["attempts"]) == ("no_answer", 3), dict(rows[never])
    assert rows[never]["history"] == "no_answer,no_answer,no_answer"
    assert (rows[answers]["result"], rows[answers]["attempts"]) == ("answered", 1)
    # Reached 15 s after the previous attempt ended (rings 3 s, the outcome is collected within ~1 s).
    reached = [t for n, t in watch.seen if n == never]
    gaps = [b - a for a, b in pairwise(reached)]
    assert all(15 <= g <= 15 + 3 + 6 for g in gaps), gaps
    assert db(cfg).execute("SELECT status, note FROM dialer_runs").fetchone()[:] == ("done", "")


def test_outcomes_are_collected_during_the_pause(dialer, asterisk):
    """bundle 2, timeout 30: an answer in the first batch is on the run page within seconds, not after the pause."""
    from tests.test_dialer import run_page_results
    cfg = dialer(bundle=2, timeout=30, max_in_progress=10)
    first = numbers([1, 1, 1])
    import_lines(cfg, first)
    watch = CalleeWatch(dialer.callee_log)
    watch.start()
    p = subprocess.Popen([str(BIN), "--config", str(cfg), "dialer", "run", "--now"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        conn = db(cfg)
        deadline = time.time() + 25
        while len(watch.seen) < 2:
            assert time.time() < deadline, "the first batch never reached the callee"
            time.sleep(0.05)
        reached = max(t for _, t in watch.seen)
        # The callee answers at once and hangs up after 4 s; Asterisk archives the call file at the answer.
        while conn.execute("SELECT count(*) FROM dialer_calls WHERE result = 'answered'").fetchone()[0] < 2:
            # (callee reached -> answered -> archived by Asterisk -> collected: 2 s plus the answer's path)
            assert time.time() < reached + 3, "outcomes not collected during the pause"
            time.sleep(0.05)
        shown = run_page_results(cfg, conn.execute("SELECT id FROM dialer_runs").fetchone()[0])
        assert [shown[n][0] for n in first[:2]] == ["answered", "answered"] and shown[first[2]][0] == "pending"
        assert time.time() < reached + 20        # well inside the 30 s pause
    finally:
        kit(cfg, "dialer", "stop")
        p.wait(60)
        watch.stop.set()


def test_a_run_asterisk_does_not_serve_ends_with_an_error(dialer, asterisk, tmp_path):
    """Wrong spool_dir (or pbx_spool not loaded): no call file is ever picked up. The run ends after
    stall_seconds with the reason on the run and in the log, and takes its files back."""
    cfg = dialer(bundle=2, timeout=1, max_in_progress=4, stall_seconds=10)
    nums = numbers([1, 1, 1, 1, 1, 1])
    import_lines(cfg, nums)
    nowhere = tmp_path / "not-the-spool"
    (nowhere / "outgoing").mkdir(parents=True)
    env = {"ASTERISK_KIT_ASTERISK_SPOOL_DIR": str(nowhere)}
    t0 = time.time()
    r = kit(cfg, "dialer", "run", "--now", env=env, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 10 <= time.time() - t0 < 60
    run = db(cfg).execute("SELECT status, note FROM dialer_runs").fetchone()
    assert run["status"] == "failed" and "has not picked up call file" in run["note"] and "pbx_spool" in run["note"]
    assert str(nowhere) in run["note"]
    results = Counter(r["result"] for r in db(cfg).execute("SELECT result FROM dialer_calls"))
    assert results == Counter({"failed": 4, "withdrawn": 2}), results
    assert not list((nowhere / "outgoing").iterdir()), "call files left for an Asterisk that may read them later"
    log = "".join(p.read_text() for p in (cfg.parent / "log").glob("dialer-*.log"))
    assert "ERROR" in log and "has not picked up call file" in log
    page = run_page(cfg, 1)                       # ... and the page says so
    assert "прерван: ошибка" in page and "has not picked up call file" in page


def run_page(cfg, run_id) -> str:
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
        return s.get(srv.url + f"/dialer/runs/{run_id}", timeout=10).text
    finally:
        srv.stop()


def test_a_row_that_cannot_be_rendered_fails_alone(dialer, asterisk):
    """A stored row an older version wrote (not digits only) is marked failed with its reason; the run goes on."""
    cfg = dialer(bundle=5, timeout=0)
    good = numbers([1, 1])
    import_lines(cfg, good)
    conn = sqlite3.connect(cfg.parent / "data" / "asterisk-kit.sqlite")
    with conn:
        conn.execute("INSERT INTO dialer_phones (number, digit, comment, created, updated) "
                     "VALUES ('8 999 000-00-99', '', 'old tool', 0, 0), ('89990000098', '12', '', 0, 0)")
    r = kit(cfg, "dialer", "run", "--now", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {c["number"]: c for c in db(cfg).execute("SELECT * FROM dialer_calls")}
    assert [rows[n]["result"] for n in good] == ["answered", "answered"]
    for bad in ("8 999 000-00-99", "89990000098"):
        assert (rows[bad]["state"], rows[bad]["result"]) == ("done", "failed")
        assert "refusing to render a call file" in rows[bad]["note"]
    assert db(cfg).execute("SELECT status FROM dialer_runs").fetchone()[0] == "done"
    assert "not dialled: refusing to render" in "".join(p.read_text() for p in (cfg.parent / "log").glob("dialer-*"))


def test_close_keeps_what_the_dialplan_reported(tmp_path):
    """Calls whose archived call file never came back (e.g. a custom template without `Archive: yes`) are
    closed with the outcome the dialplan reported through AGI; only a call with no word at all is failed."""
    import logging

    from asterisk_kit.config import parse_text
    from asterisk_kit.dialer import store
    from asterisk_kit.dialer.numbers import Entry
    from asterisk_kit.dialer.runner import Runner
    cfg = parse_text(f"[general]\ndata_dir = {tmp_path}/data\n[asterisk]\nami_user = a\nami_secret = b\n"
                     f"spool_dir = {tmp_path}/spool\nrun_user =\n[dialer]\n", tmp_path / "kit.ini")
    conn = store.connect(cfg)
    nums = ["89990000001", "89990000002", "89990000003", "89990000004"]
    store.upsert_phones(conn, [Entry(n) for n in nums])
    run_id = store.create_run(conn, "manual", "2026-11-23")
    conn.execute("UPDATE dialer_calls SET state = 'spooled'")
    store.record_event(conn, run_id, nums[0], answered=True)
    store.record_event(conn, run_id, nums[1], dialstatus="BUSY")
    store.record_event(conn, run_id, nums[2], dialstatus="NOANSWER")
    assert Runner(cfg, conn, logging.getLogger("test"))._close(run_id) == "done"
    got = {c["number"]: (c["state"], c["result"]) for c in store.calls(conn, run_id)}
    assert got == {nums[0]: ("done", "answered"), nums[1]: ("done", "busy"), nums[2]: ("done", "no_answer"),
                   nums[3]: ("done", "failed")}
    assert "4 call(s) not reported back" in store.run(conn, run_id)["note"]


def test_retries_per_outcome_each_with_its_own_spacing(dialer, asterisk):
    """A campaign's retry rules per outcome: busy 2 extra attempts 9 s apart, no answer 1 extra 15 s
    later, failed none. Seen at the callee: each number called exactly as often as its rule says, spaced
    by its own delay; the answered number once; every attempt with the run's caller ID, even after the
    campaign's caller ID was changed mid-run. (Delays under a minute: stored settings, as a test may.)"""
    from asterisk_kit.config import load
    from asterisk_kit.dialer import store
    from testbed.dialer import callerids
    cfg = dialer(bundle=5, timeout=1, ring_seconds=3, callerids='"Second" <84951111111>')
    conn = store.connect(load(str(cfg)))
    camp = store.create_campaign(conn, "Retries", {"callerid": '"Second" <84951111111>', "retries": {
        "busy": [2, 0.15], "no_answer": [1, 0.25], "failed": [0, 0.1]}})
    busy, never, answers, fails = numbers([2, 3, 1, 5])
    from asterisk_kit.dialer.numbers import Entry
    store.upsert_phones(conn, [Entry(n) for n in (busy, never, answers, fails)], campaign_id=camp)
    watch = CalleeWatch(dialer.callee_log)
    watch.start()
    p = subprocess.Popen([str(BIN), "--config", str(cfg), "dialer", "run", "--now", "--campaign", str(camp)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while len(watch.seen) < 4:
        assert time.time() < deadline, watch.seen
        time.sleep(0.1)
    store.update_campaign(conn, camp, settings={"callerid": '"Kit test" <84950000000>'})   # mid-run edit
    out, err = p.communicate(timeout=120)
    watch.stop.set()
    watch.join(5)
    assert p.returncode == 0, out + err
    assert Counter(n for n, _ in watch.seen) == Counter({busy: 3, never: 2, answers: 1, fails: 1}), watch.seen
    rows = {c["number"]: c for c in db(cfg).execute("SELECT * FROM dialer_calls")}
    assert {n: (r["result"], r["attempts"], r["history"]) for n, r in rows.items()} == {
        busy: ("busy", 3, "busy,busy,busy"), never: ("no_answer", 2, "no_answer,no_answer"),
        answers: ("answered", 1, "answered"), fails: ("failed", 1, "failed")}
    # Spacing from the callee's log: reached again the delay after the previous attempt ended (busy at
    # once, no answer after ringing 3 s; the outcome is collected within about a second).
    for n, delay, ring in ((busy, 9, 0), (never, 15, 3)):
        gaps = [b - a for a, b in pairwise(t for m, t in watch.seen if m == n)]
        assert all(delay <= g <= delay + ring + 6 for g in gaps), (n, gaps)
    assert sorted(callerids(dialer.callee_log)) == sorted((n, "84951111111") for n, _ in watch.seen)
    assert not list((asterisk.spool_dir / "outgoing").glob("asterisk-kit-*"))
    # The export's first and last call: the hand-over of the first and of the latest attempt.
    from asterisk_kit.dialer import runview
    run = dict(db(cfg).execute("SELECT * FROM dialer_runs WHERE campaign_id = ?", (camp,)).fetchone())
    times = {r["number"]: (r["first_call"], r["last_call"]) for r in runview.export_rows(conn, run)}
    first_seen = {n: min(t for m, t in watch.seen if m == n) for n in times}
    assert times[busy][1] - times[busy][0] >= 18 and times[never][1] - times[never][0] >= 15, times
    assert times[answers][0] == times[answers][1] and all(abs(times[n][0] - first_seen[n]) < 3 for n in times)
