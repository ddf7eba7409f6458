"""NiMbox CRM push: client outcomes against the fake, call fields, outbox, hook on the real testbed,
replicator on the real MariaDB."""
from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from asterisk_kit.config import ConfigError, load, parse_text
from asterisk_kit.nimbox import client
from asterisk_kit.nimbox.call import CallBuilder, format_initiated, monitor_date
from testbed.fakes.nimbox import FakeNimbox
from testbed.kitcli import kit
from testbed.nimbox import DIALPLAN, nimbox_config, place_call, stamps


@pytest.fixture()
def fake():
    f = FakeNimbox().start()
    yield f
    f.stop()


def db(cfg):
    from asterisk_kit.nimbox import outbox
    return outbox.connect(load(str(cfg)))     # creates the store the way the kit does


# ---- client ----------------------------------------------------------------------------------------

P = {"initiated": "2026-11-23T18:00:05", "source": "101", "destination": "84951234567", "duration": "3"}


def test_client_outcomes_against_the_fake(fake):
    c = client.NimboxClient(fake.url, fake.token, timeout=2)
    r = c.create(P)
    assert r.kind == client.CREATED and r.phonecall_id
    assert c.create(P).kind == client.EXISTS                                # uniqueness key
    assert c.create(dict(P, destination="1234567")).kind == client.REJECTED   # unknown destination
    assert "destination" in c.create(dict(P, destination="1234567")).detail
    bad = client.NimboxClient(fake.url, "wrong", timeout=2).create(dict(P, source="102"))
    assert bad.kind == client.TEMPORARY and bad.auth                        # the call must not be dropped
    fake.mode = "503"
    assert c.create(dict(P, source="103")).kind == client.TEMPORARY
    fake.mode = "reset"
    assert c.create(dict(P, source="103")).kind == client.TEMPORARY
    assert client.send_once(fake.url, fake.token, dict(P, source="103"), 1).kind == client.TEMPORARY
    fake.mode = "up"
    # The stdlib transport of the hook gives the same outcomes.
    assert client.send_once(fake.url, fake.token, dict(P, source="103"), 1).kind == client.CREATED
    assert client.send_once(fake.url, fake.token, dict(P, source="103"), 1).kind == client.EXISTS
    assert client.send_once("http://127.0.0.1:9", fake.token, P, 1).kind == client.TEMPORARY
    assert set(fake.records) == {tuple(P[k] for k in ("initiated", "source", "destination")),
                                 ("2026-11-23T18:00:05", "103", "84951234567")}
    # A duplicate answered as a success (the other possible reading of the API) is also fine.
    fake.duplicate_style = "success"
    assert c.create(P).kind == client.CREATED and len(fake.records) == 2


def test_classify_both_json_shapes_and_garbage():
    ok = client.classify(200, b'{"error": false, "contactId": 12334, "phonecallId": 3241}')
    assert ok.kind == client.CREATED and ok.phonecall_id == 3241
    rej = client.classify(200, json.dumps({"error": True,
                                           "errors": {"destination": "No existe ningún contacto"}}).encode())
    assert rej.kind == client.REJECTED and rej.done
    exists = client.classify(200, b'{"error": true, "errors": {"phonecall": "La llamada ya existe"}}')
    assert exists.kind == client.EXISTS
    for status, body in ((200, b"<html>maintenance</html>"), (502, b""), (200, b'{"error": true, "errors": {}}'),
                         (200, b"[]"), (401, b"")):
        o = client.classify(status, body)
        assert o.kind == client.TEMPORARY and not o.done, (status, body)


def test_delete_range_is_inclusive_for_the_caller(fake):
    c = client.NimboxClient(fake.url, fake.token, timeout=2)
    for day in ("2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"):
        assert c.create(dict(P, initiated=f"{day}T10:00:00")).kind == client.CREATED
    assert c.delete(dt.date(2026, 11, 21), dt.date(2026, 11, 22)) == 2
    assert sorted(k[0][:10] for k in fake.records) == ["2026-11-20", "2026-11-23"]
    with pytest.raises(client.NimboxError):
        client.NimboxClient(fake.url, "wrong", timeout=2).delete(dt.date(2026, 11, 20), dt.date(2026, 11, 20))


# ---- call fields ------------------------------------------------------------------------------------

def _cfg(tmp_path, tz="Europe/Moscow", **n):
    n = {"url": "http://127.0.0.1:1", "token": "t", **n}
    text = (f"[general]\ndata_dir = {tmp_path}\ntimezone = {tz}\n[asterisk]\nami_user = x\nami_secret = x\n"
            "[nimbox]\n" + "".join(f"{k} = {v}\n" for k, v in n.items()))
    return parse_text(text, tmp_path / "kit.ini")


def test_initiated_zone_handling():
    local = dt.datetime(2026, 11, 23, 18, 0, 5)
    from zoneinfo import ZoneInfo
    msk = ZoneInfo("Europe/Moscow")
    assert format_initiated(local, "local", msk) == "2026-11-23T18:00:05"
    assert format_initiated(local, "offset", msk) == "2026-11-23T18:00:05+03:00"
    assert format_initiated(local, "utc", msk) == "2026-11-23T15:00:05Z"
    assert format_initiated(local, "local-z", msk) == "2026-11-23T18:00:05Z"   # the old script's label


def test_hook_and_cdr_build_the_same_call(tmp_path):
    cfg = _cfg(tmp_path, destination_rules=r"^9(\d{7,})$ => \1; ^(\d{7})$ => 495\1",
               recording_url="https://pbx/monitor/{year}/{month}/{day}/{recordingfile}", initiated_format="utc")
    b = CallBuilder(cfg)
    epoch = dt.datetime(2026, 11, 23, 15, 0, 5, 900000, tzinfo=dt.timezone.utc).timestamp()
    rec = "out-92345671-101-20261123-180005-1700000000.12.wav"
    from_hook = b.build(b.local_from_epoch(epoch), "101", "92345678", 7, 5, rec, "1700000000.12")
    from_cdr = b.from_cdr({"calldate": dt.datetime(2026, 11, 23, 18, 0, 5), "src": "101", "dst": "92345678",
                           "duration": 7, "billsec": 5, "recordingfile": rec, "linkedid": "1700000000.12"})
    assert from_hook == from_cdr
    assert from_hook.key == ("2026-11-23T15:00:05Z", "101", "4952345678")   # 9 stripped, area code added
    assert from_hook.url == "https://pbx/monitor/2026/11/23/" + rec
    assert from_hook.duration == 7
    assert b.build(b.local_from_epoch(epoch), "101", "984951234567", 7, 5, "", "").destination == "84951234567"
    assert b.build(b.local_from_epoch(epoch), "101", "84951234567", 7, 5, "", "").url == ""
    assert monitor_date("external-101-84951234567-20250102-101010-1.2.wav", dt.datetime(2026, 1, 1)) == \
        ("2025", "01", "02")
    assert monitor_date("odd.wav", dt.datetime(2026, 1, 9)) == ("2026", "01", "09")
    assert not b.qualifies("101", "ANSWERED") and b.qualifies("2345678", "BUSY")


def test_config_errors_name_section_and_key(tmp_path):
    for key, value in (("destination_rules", "^9( => 1"), ("destination_rules", "^9 => abc"),
                       ("recording_url", "https://pbx/{password}"), ("initiated_format", "gmt"),
                       ("cron_full", "every night")):
        with pytest.raises(ConfigError) as e:
            _cfg(tmp_path, **{key: value})
        assert f"[nimbox] {key}" in str(e.value), str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_text("[asterisk]\nami_user = x\nami_secret = x\n[nimbox]\nurl = http://x\n", tmp_path / "k.ini")
    assert "[nimbox] token: missing" in str(e.value)


def test_install_renders_hook_and_cron(tmp_path):
    cfg = nimbox_config(tmp_path, None, "http://127.0.0.1:1", cron_full="30 2 * * *", cron_incremental="off")
    from asterisk_kit.install import render_cron, render_dialplan
    c = load(str(cfg))
    plan = render_dialplan(c)
    assert "[nimbox-hangup]" in plan and "Set(AGISIGHUP=no)" in plan and "nimbox-call,${CDR(start,u)}" in plan
    assert "[nimbox-attach]" in plan and "hangup_handler_push" in plan
    hangup = plan.split("[nimbox-hangup]")[1]
    assert hangup.strip().splitlines()[-1].strip().endswith("Return()")
    cron = render_cron(c)
    assert "30 2 * * * root" in cron and "nimbox sync --full" in cron
    assert "nimbox sync >" not in cron                     # incremental switched off


def test_sync_without_mysql_drains_the_outbox_and_is_locked(tmp_path, fake):
    cfg = nimbox_config(tmp_path, None, fake.url)
    from asterisk_kit.nimbox import outbox
    from asterisk_kit.nimbox.call import CallBuilder
    c = load(str(cfg))
    b = CallBuilder(c)
    conn = outbox.connect(c)
    calls = [b.build(dt.datetime(2026, 11, 23, 10, 0, i), "101", "84951234567", 5, 3, "", f"1.{i}") for i in range(5)]
    calls.append(b.build(dt.datetime(2026, 11, 23, 10, 1, 0), "101", "1234567890123456789", 5, 3, "", "2.0"))
    for call in calls:
        assert outbox.add_pending(conn, call, "hook")
    assert not outbox.add_pending(conn, calls[0], "hook")   # once only
    from asterisk_kit.lock import JobLock
    with JobLock(c.data_dir, "nimbox-sync"):
        r = kit(cfg, "nimbox", "sync")
        assert r.returncode == 75, r.stderr
    r = kit(cfg, "nimbox", "sync")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "created 5," in r.stdout and "rejected 1," in r.stdout, r.stdout
    assert len(fake.records) == 5
    assert outbox.counts(conn) == {"created": 5, "rejected": 1}
    r = kit(cfg, "nimbox", "sync")
    assert "created 0," in r.stdout and fake.create_requests == 6   # nothing re-sent


# ---- the hangup hook on the real testbed ----------------------------------------------------------

@pytest.fixture()
def hooked(tmp_path, asterisk, fake):
    """A kit config against the testbed and the fake; the kit's dialplan installed and loaded."""
    asterisk.add_test_dialplan("nimbox", DIALPLAN, reload=False)

    def make(**keys):
        cfg = nimbox_config(tmp_path, asterisk, fake.url, **keys)
        kit(cfg, "install", "--asterisk-etc", str(asterisk.etc_dir), "--no-initd", "--no-cron", "--reload",
            check=True)
        return cfg
    return make


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.asterisk
def test_call_hangs_up_and_nimbox_has_it(hooked, asterisk, fake):
    cfg = hooked()
    t0 = time.time()
    place_call(asterisk, "92345671", caller="101")        # outside prefix 9 + a 7-digit local number
    place_call(asterisk, "984951230001", caller="102")
    place_call(asterisk, "555", caller="103")             # internal: under min_destination_length
    fake.wait_records(2, timeout=30)
    recs = {r["source"]: r for r in fake.records.values()}
    assert set(recs) == {"101", "102"}
    r = recs["101"]
    assert r["destination"] == "4952345671" and recs["102"]["destination"] == "84951230001"
    started = dt.datetime.strptime(r["initiated"], "%Y-%m-%dT%H:%M:%SZ")   # local time labelled Z (default)
    assert abs(started.timestamp() - t0) < 10
    assert r["duration"] in ("1", "2", "3")
    assert r["url"].startswith(f"https://pbx.example.com/monitor/{started:%Y/%m/%d}/out-92345671-101-{started:%Y%m%d}-")
    # Pushed at hangup, not later by cron: the stamp handler ran just before the kit's. The bound is
    # loose on purpose (a loaded 2-core CI machine starts the AGI Pythons slowly); the figure the
    # issue asks for (p95 < 300 ms) is measured by benchmarks/nimbox_hook.py.
    mine = ("101", "102", "103")
    _wait(lambda: all("end" in stamps(asterisk).get(c, {}) for c in mine), 20, "the stamps")
    st = stamps(asterisk)
    delays = sorted(rec["at"] - st[rec["source"]]["begin"] for rec in fake.records.values())
    assert len(delays) == 2, delays
    assert all(0 < d < 3.0 for d in delays), delays
    conn = db(cfg)
    assert {row["state"] for row in conn.execute("SELECT state FROM nimbox_calls")} == {"created"}
    assert conn.execute("SELECT count(*) FROM nimbox_calls").fetchone()[0] == 2
    # The AGI told the dialplan it succeeded, and Asterisk logged no AGI trouble.
    assert "nimbox-call failed" not in asterisk.messages()


@pytest.mark.asterisk
def test_nimbox_down_calls_wait_in_the_outbox_then_sync_sends_each_once(hooked, asterisk, fake, tmp_path):
    cfg = hooked(hook_timeout="1")
    fake.mode, fake.hang_seconds = "hang", 30         # accepts, answers long after the test
    numbers = ["84951110001", "84951110002", "84951110003"]
    for i, n in enumerate(numbers):
        place_call(asterisk, n, caller=f"20{i}")
    conn = db(cfg)
    # Each hook stored its call, tried once within hook_timeout and recorded the failed attempt (it keeps
    # part of its deadline for that write). On a loaded machine a hook may find its deadline spent before
    # sending (then attempts stays 0): the call waits in the outbox all the same, which is what counts.
    _wait(lambda: conn.execute("SELECT count(*) FROM nimbox_calls WHERE state = 'pending' AND attempts <= 1")
          .fetchone()[0] == 3, 40, "three calls in the outbox")
    callers = ("200", "201", "202")
    held = _wait(lambda: (lambda st: [st[c]["end"] - st[c]["begin"] for c in callers]
                          if all("end" in st.get(c, {}) and "begin" in st.get(c, {}) for c in callers) else None)
                 (stamps(asterisk)), 20, "the stamps")
    # The teardown waited for the hook no longer than its timeout (1 s) plus the script's start-up
    # (three Pythons started at once on a possibly loaded 2-core machine); a hook that waited for the
    # hanging NiMbox (30 s) would be far beyond.
    assert all(d < 1.0 + 3.0 for d in held), held
    fake.mode = "reset"                                # now: connection closed without an answer
    place_call(asterisk, "84951110004", caller="204")
    _wait(lambda: conn.execute("SELECT count(*) FROM nimbox_calls WHERE state = 'pending'").fetchone()[0] == 4,
          40, "the fourth call in the outbox")
    assert not fake.records
    r = kit(cfg, "nimbox", "sync")
    assert r.returncode == 1 and "stay in the outbox" in r.stderr      # still down: nothing lost
    fake.mode = "up"
    r = kit(cfg, "nimbox", "sync")
    assert r.returncode == 0, r.stdout + r.stderr
    # A hung request may have been completed by NiMbox after the hook gave up: it answers "exists".
    import re
    created, there = map(int, re.search(r"created (\d+), already there (\d+)", r.stdout).groups())
    assert created + there == 4 and created >= 1, r.stdout
    assert sorted(k[2] for k in fake.records) == sorted(numbers + ["84951110004"])   # each exactly once
    assert {row["state"] for row in conn.execute("SELECT state FROM nimbox_calls")} <= {"created", "exists"}
    sent = fake.arrivals     # (a request hung earlier may still be finishing: count arrivals)
    r = kit(cfg, "nimbox", "sync")
    assert "created 0," in r.stdout and len(fake.records) == 4 and fake.arrivals == sent


# ---- the replicator on the real MariaDB --------------------------------------------------------------

def cdr_rows(n: int, base: dt.datetime, prefix: str = "1"):
    """N calls from BASE on, one second apart, some with several rows (legs of one call), and what
    NiMbox must end up with: {key: (duration, url-suffix)} plus the count of unknown destinations.
    Kinds by i % 10: 0 internal (3 digits: not sent), 1 outside prefix 9 + 7 digits (area code added),
    2 outside prefix 9 + a 10-digit number (9 stripped), 3 a number no contact has (rejected), else a
    full 11-digit number. The first
    qualifying row of a call stands for it."""
    rows, expected, unknown = [], {}, 0
    for i in range(n):
        t = base + dt.timedelta(seconds=i)
        kind = i % 10
        num = f"{i:07d}"
        dst = {0: f"1{i % 100:02d}", 1: "9" + num[:-1] + "7", 2: "9849" + num, 3: "1" * 9 + num}.get(kind, "8495" + num)
        src = f"1{i % 50:02d}"
        linkedid = f"{prefix}{1700000000 + i}.{i}"
        rec = f"out-{dst}-{src}-{t:%Y%m%d-%H%M%S}-{linkedid}.wav" if i % 2 else ""
        dur, bill = 10 + i % 30, 5 + i % 20
        rows.append((t, src, dst, dur, bill, "ANSWERED", rec, linkedid, linkedid, 1))
        if i % 3 == 0:   # a second leg of the same call: another dst, later; must not be sent
            rows.append((t + dt.timedelta(seconds=5), src, "84990000000", dur - 5, bill, "ANSWERED", "",
                         linkedid, f"{prefix}{1700000000 + i}.{i + 1}", 2))
        if i % 7 == 0:   # the same leg twice (another sequence)
            rows.append((t, src, dst, dur, bill, "ANSWERED", rec, linkedid, linkedid, 0 if i % 3 else 3))
        if kind == 0:
            if i % 3 == 0:   # internal first leg, transferred out: the outside leg stands for the call
                expected[((t + dt.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ"), src, "84990000000")] = \
                    (str(dur - 5), "")
            continue
        if kind == 3:
            unknown += 1
            continue
        d = {1: "495" + num[:-1] + "7", 2: "849" + num}.get(kind, dst)
        expected[(t.strftime("%Y-%m-%dT%H:%M:%SZ"), src, d)] = (str(dur), rec)
    return rows, expected, unknown


def insert_cdr(mariadb, rows):
    sql = ("INSERT INTO cdr (calldate, src, dst, duration, billsec, disposition, recordingfile, linkedid, uniqueid, "
           "sequence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
    for i in range(0, len(rows), 2000):
        mariadb.executemany(sql, rows[i:i + 2000], database="asteriskcdrdb")


@pytest.fixture()
def cdr(mariadb):
    mariadb.execute("TRUNCATE TABLE cdr", database="asteriskcdrdb")
    yield mariadb
    mariadb.execute("TRUNCATE TABLE cdr", database="asteriskcdrdb")


def _now():
    return dt.datetime.now().replace(microsecond=0)


def test_replicator_sends_every_qualifying_call_once(tmp_path, cdr, fake):
    rows, expected, unknown = cdr_rows(3000, _now() - dt.timedelta(minutes=100))
    old_rows, old_expected, old_unknown = cdr_rows(40, _now() - dt.timedelta(days=5), prefix="2")
    insert_cdr(cdr, rows + old_rows)
    cfg = nimbox_config(tmp_path, None, fake.url, mysql=cdr.mysql_section(), incremental_hours="3", full_days="30")
    r = kit(cfg, "nimbox", "sync", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(fake.records) == set(expected)
    assert all(n == 1 for n in fake.attempts.values())          # de-duplicated before sending
    for key, (dur, rec) in expected.items():
        got = fake.records[key]
        assert got["duration"] == dur
        assert got["url"] == (f"https://pbx.example.com/monitor/{key[0][:4]}/{key[0][5:7]}/{key[0][8:10]}/{rec}"
                              if rec else "")
    assert f"created {len(expected)}," in r.stdout and f"rejected {unknown}," in r.stdout, r.stdout
    # Re-run: nothing new, not even a request.
    sent = fake.create_requests
    r = kit(cfg, "nimbox", "sync", timeout=300)
    assert r.returncode == 0 and "created 0," in r.stdout and fake.create_requests == sent, r.stdout
    # The same again with the kit's memory lost: NiMbox's own uniqueness answers, nothing doubles.
    (tmp_path / "data" / "asterisk-kit.sqlite").unlink()
    for extra in ("-wal", "-shm"):
        (tmp_path / "data" / f"asterisk-kit.sqlite{extra}").unlink(missing_ok=True)
    r = kit(cfg, "nimbox", "sync", timeout=300)
    assert r.returncode == 0 and "created 0," in r.stdout and f"already there {len(expected)} " in r.stdout, r.stdout
    assert set(fake.records) == set(expected)
    # --full reaches the older calls too; --since a window of its own.
    r = kit(cfg, "nimbox", "sync", "--full", timeout=300)
    assert r.returncode == 0 and f"created {len(old_expected)}," in r.stdout, r.stdout
    assert set(fake.records) == set(expected) | set(old_expected)


def test_replicator_killed_mid_run_loses_nothing_and_doubles_nothing(tmp_path, cdr):
    import signal
    import subprocess

    from testbed.kitcli import BIN
    slow = FakeNimbox(latency=0.02).start()
    try:
        rows, expected, _ = cdr_rows(2500, _now() - dt.timedelta(minutes=60))
        insert_cdr(cdr, rows)
        cfg = nimbox_config(tmp_path, None, slow.url, mysql=cdr.mysql_section(), concurrency="4")
        p = subprocess.Popen([str(BIN), "--config", str(cfg), "nimbox", "sync"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        slow.wait_records(300, timeout=120)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        assert 300 <= len(slow.records) < len(expected)
        r = kit(cfg, "nimbox", "sync", timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert set(slow.records) == set(expected)
        # What the killed run had sent but not yet recorded was sent once more and answered "exists".
        assert max(slow.attempts.values()) <= 2
        r = kit(cfg, "nimbox", "sync", timeout=300)
        assert "created 0," in r.stdout and set(slow.records) == set(expected)
    finally:
        slow.stop()


@pytest.mark.asterisk
def test_hook_and_replicator_agree_on_the_cdr_asterisk_wrote(hooked, asterisk, fake, cdr, tmp_path):
    """The calls the hook sent, read back from the CDR Asterisk itself wrote (all legs of each
    call), are recognised by the replicator: nothing is sent twice, even with the kit's memory
    lost (NiMbox's key matches)."""
    from testbed.nimbox import enable_cdr_csv, read_cdr_csv
    csv_path = enable_cdr_csv(asterisk)
    cfg = hooked()
    t0 = _now() - dt.timedelta(seconds=2)
    callers = ["401", "402", "403"]
    for i, c in enumerate(callers):
        place_call(asterisk, ["92345671", "984951230001", "84957770001"][i], caller=c)
    fake.wait_records(3, timeout=30)
    rows = _wait(lambda: [r for r in read_cdr_csv(csv_path) if r["src"] in callers]
                 if len({r["linkedid"] for r in read_cdr_csv(csv_path) if r["src"] in callers}) == 3
                 and len([r for r in read_cdr_csv(csv_path) if r["src"] in callers]) >= 9 else None,
                 30, "the CDR of the three calls")
    insert_cdr(cdr, [(r["calldate"], r["src"], r["dst"], r["duration"], r["billsec"], r["disposition"],
                      r["recordingfile"], r["linkedid"], r["uniqueid"], r["sequence"]) for r in rows])
    cfg_text = cfg.read_text().replace("[nimbox]\n", cdr.mysql_section() + "[nimbox]\n")
    cfg.write_text(cfg_text)
    since = t0.strftime("%Y-%m-%d %H:%M:%S")
    r = kit(cfg, "nimbox", "sync", "--since", since)
    assert r.returncode == 0 and "created 0, already there 3 (3 known" in r.stdout, r.stdout + r.stderr
    for extra in ("", "-wal", "-shm"):
        (tmp_path / "data" / f"asterisk-kit.sqlite{extra}").unlink(missing_ok=True)
    r = kit(cfg, "nimbox", "sync", "--since", since)
    assert r.returncode == 0 and "created 0, already there 3 (0 known, 3 answered" in r.stdout, r.stdout
    assert len(fake.records) == 3


# ---- doctor, status, delete, progress ----------------------------------------------------------

@pytest.mark.asterisk
def test_doctor_checks_nimbox_and_the_hook(hooked, asterisk, fake, tmp_path):
    cfg = hooked()
    r = kit(cfg, "doctor")
    got = {ln.split(":", 1)[0].split(None, 1)[1]: ln for ln in r.stdout.splitlines() if ":" in ln}
    assert got["nimbox api"].startswith("ok") and "rejected" in got["nimbox api"], r.stdout
    assert got["nimbox dialplan"].startswith("ok"), r.stdout
    assert not fake.records                                # the probe created nothing
    cfg.write_text(cfg.read_text().replace("token = tok-secret", "token = wrong"))
    r = kit(cfg, "doctor")
    line = [ln for ln in r.stdout.splitlines() if "nimbox api" in ln][0]
    assert r.returncode == 1 and line.startswith("FAILED") and "token" in line, r.stdout
    assert "wrong" not in line


def test_status_delete_and_terminal_progress(tmp_path, fake):
    import os
    import pty
    import subprocess

    from testbed.kitcli import BIN
    cfg = nimbox_config(tmp_path, None, fake.url)
    from asterisk_kit.nimbox import outbox
    c = load(str(cfg))
    b = CallBuilder(c)
    conn = outbox.connect(c)
    for day in (20, 21, 22):
        call = b.build(dt.datetime(2026, 11, day, 12, 0, 0), "101", "84951234567", 5, 3, "", "")
        outbox.add_pending(conn, call, "hook")
    r = kit(cfg, "nimbox", "status", check=True)
    assert "outbox (pending): 3;" in r.stdout and "2026-11-21T12:00:00Z 101 -> 84951234567" in r.stdout
    # Progress goes to a terminal only: run the sync with stderr on a pseudo-terminal.
    master, slave = pty.openpty()
    p = subprocess.run([str(BIN), "--config", str(cfg), "nimbox", "sync", "--verbose"], stdout=subprocess.PIPE,
                       stderr=slave, text=True, timeout=120)
    os.close(slave)
    seen = os.read(master, 65536).decode(errors="replace")
    os.close(master)
    assert p.returncode == 0 and "created 3," in p.stdout
    assert "\rcreated 3, already there 0" in seen, seen
    # delete: the API's range is exclusive, the command's inclusive; the kit forgets those days.
    r = kit(cfg, "nimbox", "delete", "--from", "2026-11-21", "--to", "2026-11-22", "--yes", check=True)
    assert "deleted 2 call(s)" in r.stdout
    assert sorted(k[0][:10] for k in fake.records) == ["2026-11-20"]
    assert outbox.counts(conn) == {"created": 1}
    r = kit(cfg, "nimbox", "delete", "--from", "2026-11-22", "--to", "2026-11-21", "--yes")
    assert r.returncode == 1 and "before" in r.stderr


def test_replicator_stops_early_when_nimbox_is_down(tmp_path, cdr, fake):
    rows, expected, _ = cdr_rows(600, _now() - dt.timedelta(minutes=30))
    insert_cdr(cdr, rows)
    cfg = nimbox_config(tmp_path, None, fake.url, mysql=cdr.mysql_section(), concurrency="4")
    fake.mode = "503"
    r = kit(cfg, "nimbox", "sync", timeout=300)
    assert r.returncode == 1 and "stopped early" in r.stderr, r.stdout + r.stderr
    assert fake.arrivals <= 20 + 4                  # gave up after 20 failures in a row, not 500 requests
    fake.mode = "up"
    r = kit(cfg, "nimbox", "sync", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(fake.records) == set(expected)
    import re
    waited = int(re.search(r"outbox (\d+),", r.stdout).group(1))   # the failed ones waited in the outbox
    assert 20 <= waited <= 24, r.stdout
    assert all(n == 1 for n in fake.attempts.values())


def test_hook_refuses_bad_arguments_and_keeps_what_it_cannot_send(tmp_path, fake, caplog):
    import logging

    from asterisk_kit.nimbox import hook, outbox
    cfg = load(str(nimbox_config(tmp_path, None, fake.url)))
    log = logging.getLogger("test.nimbox")
    good = ["1795457465.4", "101", "84951234567", "12", "9", "ANSWERED", "out-84951234567-101-20261123-180000-1.2.wav",
            "1.2"]
    bad = [good[:7],                                                        # an argument missing (a comma shifted)
           ["now"] + good[1:],                                             # start is not an epoch
           good[:1] + ["101;Application: System"] + good[2:],              # src is not a number
           good[:2] + ["8495123\n4567"] + good[3:]]                        # dst with a line break
    with caplog.at_level(logging.WARNING):
        for args in bad:
            hook.call(None, cfg, args, log)
    assert len(caplog.records) == 4 and not fake.arrivals
    hook.call(None, cfg, good[:2] + ["555"] + good[3:], log)             # internal: filtered, silently
    assert not fake.arrivals
    fake.mode = "503"
    hook.call(None, cfg, good, log)
    conn = outbox.connect(cfg)
    (row,) = conn.execute("SELECT * FROM nimbox_calls").fetchall()
    assert row["state"] == "pending" and row["last_error"] == "HTTP 503" and row["duration"] == 12
    fake.mode = "up"
    hook.call(None, cfg, good, log)
    assert conn.execute("SELECT state FROM nimbox_calls").fetchone()[0] == "created" and len(fake.records) == 1


# ---- FastAGI ----------------------------------------------------------------------------------------

def _cpu_seconds(pid: int) -> float:
    import os
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.asterisk
def test_fastagi_survives_early_disconnects_and_reports_calls(hooked, asterisk, fake, tmp_path):
    import socket
    import subprocess

    from testbed.asterisk import free_port
    from testbed.kitcli import BIN
    port = free_port()
    cfg = hooked(fastagi=f"127.0.0.1:{port}")
    assert f"AGI(agi://127.0.0.1:{port}/nimbox-call," in (asterisk.etc_dir / "extensions_asterisk_kit.conf").read_text()
    p = subprocess.Popen([str(BIN), "--config", str(cfg), "fastagi", "--listen", f"127.0.0.1:{port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "listening" in p.stdout.readline()
        # Clients that leave before the blank line ending the AGI headers (panoramisk spins on these).
        for i in range(30):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                if i % 3:
                    s.sendall(b"agi_network: yes\nagi_network_script: nimbox-call\n")
        cpu0 = _cpu_seconds(p.pid)
        time.sleep(2)
        assert _cpu_seconds(p.pid) - cpu0 < 0.3, "the FastAGI server burns CPU after early disconnects"
        place_call(asterisk, "84957770001", caller="501")
        fake.wait_records(1, timeout=20)
        (rec,) = fake.records.values()
        assert rec["source"] == "501" and rec["destination"] == "84957770001"
        assert p.poll() is None
        assert _cpu_seconds(p.pid) - cpu0 < 1.5
        assert any(ln.startswith("ok") and "nimbox fastagi" in ln for ln in kit(cfg, "doctor").stdout.splitlines())
    finally:
        p.terminate()
        p.wait(10)
    line = [ln for ln in kit(cfg, "doctor").stdout.splitlines() if "nimbox fastagi" in ln][0]
    assert line.startswith("FAILED") and "asterisk-kit-fastagi" in line
