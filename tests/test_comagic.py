"""CoMagic export: the real client and job against a fake CoMagic JSON-RPC server, into the local
DuckDB file and into BigQuery (the real google-cloud-bigquery client talking to a fake REST
endpoint that decodes the uploaded Parquet)."""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import time

import pytest
import requests

from asterisk_kit import config
from asterisk_kit.comagic import api, export, transform
from asterisk_kit.lock import JobLock
from testbed.fakes.bigquery import FakeBigQuery
from testbed.fakes.comagic import FakeComagic
from testbed.kitcli import BIN as BIN_KIT
from testbed.kitcli import kit

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore:.*(pandas-gbq|pandas_gbq).*")]

D0 = dt.date(2026, 1, 1)
TODAY = dt.date(2026, 6, 1)


@pytest.fixture
def fakes():
    started = []

    def make(cls=FakeComagic, **kw):
        f = cls(**kw).start()
        started.append(f)
        return f
    yield make
    for f in started:
        f.stop()


@pytest.fixture(autouse=True)
def _not_across_moscow_midnight():
    """Expected days are computed from "today" in Europe/Moscow (21:00 UTC): a test must not
    straddle that midnight, or the kit would already be one day further than the test."""
    from testbed.clock import away_from_midnight
    away_from_midnight("Europe/Moscow", margin=240)


def ini(tmp_path, fake, **keys) -> str:
    base = {"api_url": fake.url, "login": "analytics", "password": "secret-pw", "page_limit": "500"}
    base.update({k: str(v) for k, v in keys.items()})
    body = "\n".join(f"{k} = {v}" for k, v in base.items() if v is not None and v != "None")
    return (f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\n"
            f"[asterisk]\nami_user = x\nami_secret = y\n[comagic]\n{body}\n")


def cfg_of(tmp_path, fake, **keys):
    return config.parse_text(ini(tmp_path, fake, **keys), tmp_path / "kit.ini")


def cfg_file(tmp_path, fake, **keys):
    p = tmp_path / "kit.ini"
    p.write_text(ini(tmp_path, fake, **keys))
    return p


def local_counts(tmp_path):
    import duckdb
    con = duckdb.connect(str(tmp_path / "data" / "comagic.duckdb"), read_only=True)
    try:
        per_day = dict(con.execute("SELECT PARTITION_DATE, count(*) FROM calls GROUP BY 1").fetchall())
        total, distinct = con.execute("SELECT count(*), count(DISTINCT id) FROM calls").fetchone()
        loaded = {r[0] for r in con.execute("SELECT day FROM comagic_loaded_days").fetchall()}
    finally:
        con.close()
    return per_day, total, distinct, loaded


def expected(fake, first, last):
    return {d: n for d, n in fake.calls_per_day().items() if first <= d <= last}


# ---- the fake follows the documented envelope --------------------------------------------------

def test_fake_comagic_envelope_errors(fakes):
    f = fakes()

    def post(raw):
        r = requests.post(f.url, data=raw, headers={"Content-Type": "application/json; charset=UTF-8"}, timeout=10)
        assert r.status_code == 200
        e = r.json()["error"]
        return e["code"], e["data"]["mnemonic"], e["data"].get("field")

    assert post(b"{not json")[:2] == (-32700, "parse_error")
    assert post(b"[]")[:2] == (-32099, "batch_opreations_not_supported")
    assert post(json.dumps({"jsonrpc": "2.0", "method": "login.user", "params": {}}))[:2] == \
        (-32099, "notifications_not_supported")
    assert post(json.dumps({"jsonrpc": "1.0", "id": 1, "method": "x"}))[:2] == (-32600, "invalid_request")
    assert post(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "get.nothing", "params": {}}))[:2] == \
        (-32601, "method_not_found")
    assert post(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "login.user", "params": {"login": "a"}})) == \
        (-32602, "required_parameter_missed", "password")
    assert post(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "get.calls_report",
                            "params": {"access_token": f.permanent_key, "date_from": "2026-01-01 00:00:00",
                                       "date_till": "2026-01-02 00:00:00", "colour": 1}})) == \
        (-32602, "unexpected_parameters", "colour")

    def report(**kw):
        params = {"access_token": f.permanent_key, "date_from": "2026-01-01 00:00:00",
                  "date_till": "2026-01-02 00:00:00", **kw}
        return post(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "get.calls_report", "params": params}))

    assert report(limit=10001) == (-32602, "invalid_parameter_value", "limit")
    assert report(date_till="2026-04-01 00:00:01") == (-32602, "date_interval_limit_reached", "date_till")
    assert report(fields=["id", "colour"]) == (-32602, "unexpected_parameters", "fields")
    assert report(access_token="nope") == (-32001, "access_token_invalid", None)


# ---- client ------------------------------------------------------------------------------------

def test_client_reuses_token_and_pages_to_total(fakes):
    f = fakes(calls=1200, days=2)
    c = api.ComagicClient(f.url, login="analytics", password="secret-pw")
    rows = [r for page in c.iter_calls(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 3), ["id"], page_limit=100)
            for r in page]
    assert sorted(r["id"] for r in rows) == list(range(1, 1201))
    # One one-second probe of the end boundary (is date_till inclusive?), one one-row count of the
    # range, then the rest in pages of 100 after that first row.
    assert f.login_requests == 1 and f.report_requests == 14
    assert [(p["limit"], p["offset"]) for p in f.requests_log[:2]] == [(1, 0), (1, 0)]
    assert sorted(p["offset"] for p in f.requests_log[2:]) == list(range(1, 1200, 100))


def test_wrong_password_fails_once_without_loop(fakes):
    f = fakes()
    c = api.ComagicClient(f.url, login="analytics", password="wrong")
    with pytest.raises(api.AuthError) as e:
        c.call("get.calls_report", {"date_from": "2026-01-01 00:00:00", "date_till": "2026-01-02 00:00:00"})
    assert (e.value.code, e.value.mnemonic) == (-32001, "auth_error")
    assert f.login_requests == 1 and f.report_requests == 0


def test_token_refused_after_fresh_login_is_not_retried_forever(fakes):
    f = fakes(token_ttl=0)  # every token is dead on arrival
    c = api.ComagicClient(f.url, login="analytics", password="secret-pw")
    with pytest.raises(api.AuthError) as e:
        c.calls_page(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2), ["id"], 10, 0)
    assert e.value.mnemonic == "access_token_invalid"
    assert f.login_requests == 2 and f.report_requests == 2


def test_permanent_key_needs_no_login_and_errors_are_typed(fakes):
    f = fakes()
    c = api.ComagicClient(f.url, access_token=f.permanent_key)
    data, total = c.calls_page(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2), ["id", "start_time"], 5, 0)
    assert len(data) == 5 and total > 5 and f.login_requests == 0
    with pytest.raises(api.ComagicError) as e:
        c.calls_page(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2), ["id", "bogus"], 5, 0)
    assert (e.value.code, e.value.mnemonic, e.value.field) == (-32602, "unexpected_parameters", "fields")
    assert "[-32602 unexpected_parameters] (field fields)" in str(e.value)


def test_minute_limit_is_waited_for_not_hit(fakes):
    f = fakes(calls=600, days=1, minute_limit=3, minute_window=1.0)
    c = api.ComagicClient(f.url, access_token=f.permanent_key)
    rows = [r for p in c.iter_calls(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2), ["id"], page_limit=100)
            for r in p]
    assert sorted(r["id"] for r in rows) == list(range(1, 601))
    assert c.waited_seconds > 0          # slept for the resets instead of failing
    # probe + count + 6 pages, two in flight at a time, and never hit the limit
    assert f.report_requests == 8 and f.errors_sent == []


def test_an_answer_overtaken_by_a_later_one_does_not_restore_spent_points(fakes):
    # Pages go two at a time. Page 1's answer (counted first: 2 points left) is held back until page
    # 2's (counted second: 1 left) has arrived; trusting the older answer promised a spent point and
    # hit the limit (seen in CI under load).
    f = fakes(calls=600, days=1, minute_limit=4, minute_window=1.5)
    f.held_back[3] = 0.4     # probe, count, then the first two pages: hold page 1's answer
    c = api.ComagicClient(f.url, access_token=f.permanent_key, max_rate_wait=10)
    rows = [r for p in c.iter_calls(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2), ["id"], page_limit=100)
            for r in p]
    assert sorted(r["id"] for r in rows) == list(range(1, 601))
    assert f.errors_sent == [] and f.report_requests == 8


def test_day_limit_beyond_allowed_wait_fails_fast_and_clearly(fakes):
    f = fakes(day_limit=2)
    c = api.ComagicClient(f.url, access_token=f.permanent_key, max_rate_wait=30)
    a, b = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)
    c.calls_page(a, b, ["id"], 1, 0)
    c.calls_page(a, b, ["id"], 1, 1)
    t = time.monotonic()
    with pytest.raises(api.RateLimitError) as e:
        c.calls_page(a, b, ["id"], 1, 2)
    assert time.monotonic() - t < 5
    assert "max_rate_wait_seconds" in str(e.value) and "day" in str(e.value)


def test_range_refused_as_too_long_and_unreachable_offsets_are_split(fakes):
    # The fake allows 1 month and offsets below 250: the client must split both ways by itself.
    f = fakes(calls=1500, days=70, max_months=1, max_reach=250)
    c = api.ComagicClient(f.url, access_token=f.permanent_key)
    rows = [r for p in c.iter_calls(dt.datetime(2026, 1, 1), dt.datetime(2026, 3, 12), ["id"], page_limit=100)
            for r in p]
    assert {r["id"] for r in rows} == set(range(1, 1501))
    assert "date_interval_limit_reached" in f.errors_sent and "invalid_parameter_value" in f.errors_sent
    assert set(f.errors_sent) == {"date_interval_limit_reached", "invalid_parameter_value"}


def test_split_is_planned_from_a_count_and_no_row_is_fetched_twice(fakes):
    # A heavy week: 3000 calls, at most 1000 per range, so it is split (at noon, where calls sit).
    f = fakes(calls=3000, days=7)
    c = api.ComagicClient(f.url, access_token=f.permanent_key)
    rows = [r for p in c.iter_calls(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 8), ["id", "start_time"],
                                    page_limit=250, max_rows=1000) for r in p]
    assert sorted(r["id"] for r in rows) == list(range(1, 3001))       # each call once, without de-duplication
    probes = [a for a in f.answers if a["params"]["date_from"] == a["params"]["date_till"]]
    fetches = [a for a in f.answers if a not in probes]
    # Probed until a boundary second holding calls showed date_till inclusive, then never again.
    assert c.till_inclusive is True and probes[-1]["total"] > 0 and all(a["total"] == 0 for a in probes[:-1])
    # Every range too big for one pass was seen through a one-row count, never a full page; that
    # count's one row is all it costs. Apart from those rows, no row is fetched twice: in
    # particular none of the calls on the split boundary (noon) seconds.
    splits = [a for a in fetches if a["total"] > 1000]
    assert splits and all(a["params"]["limit"] == 1 for a in splits)
    sent = [i for a in fetches if a not in splits for i in a["ids"]]
    assert len(sent) == len(set(sent)) == 3000
    noon = [a["params"]["date_till"] for a in fetches if a["params"]["date_till"].endswith("11:59:59")]
    assert noon                                                         # ranges did end at a noon boundary
    counts = [a for a in fetches if a["params"]["limit"] == 1]
    pages = [a for a in fetches if a["params"]["limit"] == 250]
    assert len(f.answers) == len(probes) + len(counts) + len(pages)
    assert sum(len(a["ids"]) for a in pages) == 3000 - sum(len(a["ids"]) for a in counts if a["total"] <= 1000)
    assert len(pages) == sum(-(-(a["total"] - 1) // 250) for a in counts if a["total"] <= 1000)


# ---- transform -----------------------------------------------------------------------------------

def test_transform_types_are_explicit_and_bad_values_are_named():
    cols = transform.table_columns(["id", "start_time", "is_lost", "tags", "attributes", "sale_cost"])
    empty = transform.page_table([], cols)
    nulls = transform.page_table([{"id": 1, "start_time": "2026-01-01 10:00:00"}], cols)
    assert empty.schema == nulls.schema == transform.arrow_schema(cols)
    t = transform.page_table([{"id": 7, "start_time": "2026-01-02 23:59:59", "is_lost": True,
                               "tags": [{"tag_id": 1, "tag_name": "Заявка"}, {"tag_id": 2, "tag_name": "VIP"}],
                               "attributes": ["target"], "sale_cost": 12.5}], cols).to_pylist()[0]
    assert t["tags"] == ["Заявка", "VIP"] and t["attributes"] == ["target"] and t["is_lost"] is True
    assert t[transform.PARTITION] == dt.date(2026, 1, 2) and t["start_time"] == dt.datetime(2026, 1, 2, 23, 59, 59)
    assert nulls.to_pylist()[0]["tags"] == [] and nulls.to_pylist()[0]["sale_cost"] is None
    with pytest.raises(transform.TransformError, match="field id"):
        transform.page_table([{"id": "abc", "start_time": "2026-01-01 10:00:00"}], cols)
    mixed = transform.page_table([{"id": 1.0, "start_time": "2026-01-01 10:00:00", "attributes": ["a", None],
                                   "tags": None}], cols).to_pylist()[0]
    assert mixed["id"] == 1 and mixed["attributes"] == ["a"] and mixed["tags"] == []
    for bad in (1.5, True, "7"):
        with pytest.raises(transform.TransformError, match="field id"):
            transform.page_table([{"id": bad, "start_time": "2026-01-01 10:00:00"}], cols)
    with pytest.raises(transform.TransformError, match="field is_lost"):
        transform.page_table([{"id": 1, "start_time": "2026-01-01 10:00:00", "is_lost": "yes"}], cols)
    with pytest.raises(transform.TransformError, match="start_time"):
        transform.page_table([{"id": 1, "start_time": "01.01.2026"}], cols)
    with pytest.raises(transform.TransformError, match="without start_time"):
        transform.page_table([{"id": 1, "start_time": None}], cols)


def test_progress_line_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    out = Tty()
    p = export.Progress(out)
    p.start("2026-01-01 .. 2026-01-07")
    p.page(500, 1200)
    assert "2026-01-01 .. 2026-01-07: 500 rows fetched (range total 1200)" in out.getvalue()


# ---- the job, local DuckDB -----------------------------------------------------------------------

def test_local_export_long_range_with_faults_exactly_once_and_rerun_stable(tmp_path, fakes):
    # Offsets from 200 on are refused: 7-day ranges (~280 calls) are split, at noon, where some
    # calls sit, so the halves overlap and the job must keep each call once.
    f = fakes(calls=4000, days=100, minute_limit=8, minute_window=0.5, max_reach=200)
    # Mid-run: a token expiry, an internal error, an HTTP 502 and a rate-limit answer.
    f.faults.update({3: "expire_token", 5: "internal_error", 7: "http_502", 9: "limit_exceeded"})
    path = cfg_file(tmp_path, f, page_limit=100, max_rows_per_range=100000)
    last = D0 + dt.timedelta(days=99)
    r = kit(path, "comagic", "export", "--from", str(D0), "--to", str(last), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "100 day(s) loaded" in r.stdout and "4000 rows" in r.stdout
    # More than 3 months: several requests, none longer than the chunk (7 days + midnight).
    assert max(dt.datetime.strptime(p["date_till"], "%Y-%m-%d %H:%M:%S")
               - dt.datetime.strptime(p["date_from"], "%Y-%m-%d %H:%M:%S") for p in f.requests_log) \
        <= dt.timedelta(days=7)
    assert f.login_requests == 2 and not f.faults
    assert {"access_token_invalid", "internal_error", "limit_exceeded", "invalid_parameter_value"} == set(f.errors_sent)
    per_day, total, distinct, loaded = local_counts(tmp_path)
    assert per_day == expected(f, D0, last) and total == distinct == 4000
    assert loaded == set(export.day_range(D0, last))

    r = kit(path, "comagic", "export", "--from", str(D0), "--to", str(last), timeout=120)
    assert r.returncode == 0, r.stderr
    assert local_counts(tmp_path)[:3] == (per_day, 4000, 4000)


def test_local_default_needs_no_google_account(tmp_path, fakes):
    f = fakes(calls=300, days=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE", "CLOUDSDK", "GCE"))}
    env["HOME"] = str(tmp_path / "home")
    # Not even the Google libraries: any `import google...` fails in this process.
    code = ("import sys; sys.modules['google'] = None; from asterisk_kit.cli import main; "
            f"sys.exit(main(['--config', {str(cfg_file(tmp_path, f))!r}, 'comagic', 'export', "
            "'--from', '2026-01-01', '--to', '2026-01-03']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 day(s) loaded" in r.stdout and "300 rows" in r.stdout and "local DuckDB" in r.stdout
    assert local_counts(tmp_path)[1] == 300


def test_incremental_resumes_after_a_failed_run_without_duplicates(tmp_path, fakes):
    f = fakes(calls=1000, days=20, minute_limit=1000)
    cfg = cfg_of(tmp_path, f, first_date="2026-01-01", chunk_days=5, page_limit=100)
    # Chunk 1 succeeds; chunk 2 meets an API that keeps failing: the run stops there.
    # (chunk 1: a probe of its end second, a one-row count and 3 pages = requests 1-5)
    f.faults.update({n: "internal_error" for n in range(6, 40)})
    with pytest.raises(api.TransientError):
        export.run(cfg, today=dt.date(2026, 1, 21), client=api.ComagicClient.from_config(cfg, sleep=lambda s: None))
    per_day, total, distinct, loaded = local_counts(tmp_path)
    assert loaded == set(export.day_range(D0, dt.date(2026, 1, 5)))
    assert per_day == expected(f, D0, dt.date(2026, 1, 5))
    f.faults.clear()
    before = len(f.requests_log)
    s = export.run(cfg, today=dt.date(2026, 1, 21))
    assert s.days == export.day_range(dt.date(2026, 1, 6), dt.date(2026, 1, 20))
    assert min(p["date_from"] for p in f.requests_log[before:]) == "2026-01-06 00:00:00"
    per_day, total, distinct, loaded = local_counts(tmp_path)
    assert per_day == expected(f, D0, dt.date(2026, 1, 20)) and total == distinct
    # Up to date: the next run the same day does nothing; a day later only that day.
    calls_before = (f.login_requests, f.report_requests)
    assert export.run(cfg, today=dt.date(2026, 1, 21)).days == []
    assert (f.login_requests, f.report_requests) == calls_before    # nothing to do: not a single API request
    assert export.run(cfg, today=dt.date(2026, 1, 22)).days == [dt.date(2026, 1, 21)]


def test_a_day_being_written_does_not_hold_up_converting_the_next_pages(tmp_path, fakes, monkeypatch):
    """The export writes each finished day in a writer thread: while the first day's write is
    still in progress, the job goes on converting the pages that follow. The write here waits for
    the next page to be converted (up to 10 s); when writing blocks converting, it waits in vain."""
    import threading

    from asterisk_kit.comagic import destinations
    f = fakes(calls=3000, days=3)
    cfg = cfg_of(tmp_path, f, chunk_days=3, page_limit=200, max_rows_per_range=1200)
    converted = []
    real_page_table = transform.page_table

    def page_table(rows, columns):
        converted.append(len(rows))
        return real_page_table(rows, columns)
    monkeypatch.setattr(transform, "page_table", page_table)
    real_open = destinations.open_destination
    seen: dict = {}

    def open_destination(cfg, columns):
        dest = real_open(cfg, columns)
        real_replace = dest.replace_day

        def replace_day(day, batch):
            if not seen:
                at_start = len(converted)
                deadline = time.monotonic() + 10
                while len(converted) == at_start and time.monotonic() < deadline:
                    threading.Event().wait(0.01)
                seen[day] = len(converted) - at_start
            real_replace(day, batch)
        dest.replace_day = replace_day
        return dest
    monkeypatch.setattr(destinations, "open_destination", open_destination)
    s = export.run(cfg, D0, dt.date(2026, 1, 3), today=TODAY)
    assert s.days == export.day_range(D0, dt.date(2026, 1, 3)) and s.rows == 3000
    assert seen == {D0: seen[D0]} and seen[D0] >= 1, seen   # pages converted while day 1 was being written
    per_day, total, distinct, loaded = local_counts(tmp_path)
    assert per_day == expected(f, D0, dt.date(2026, 1, 3)) and total == distinct == 3000


def test_incremental_without_first_date_starts_yesterday(tmp_path, fakes):
    f = fakes(calls=500, days=10)
    cfg = cfg_of(tmp_path, f)
    s = export.run(cfg, today=dt.date(2026, 1, 6))
    assert s.days == [dt.date(2026, 1, 5)]
    assert local_counts(tmp_path)[0] == expected(f, dt.date(2026, 1, 5), dt.date(2026, 1, 5))
    with pytest.raises(export.ExportError, match="not over yet"):
        export.run(cfg, dt.date(2026, 1, 1), dt.date(2026, 1, 6), today=dt.date(2026, 1, 6))


def test_dry_run_writes_nothing(tmp_path, fakes):
    f = fakes(calls=200, days=2)
    r = kit(cfg_file(tmp_path, f), "comagic", "export", "--from", "2026-01-01", "--to", "2026-01-02", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "dry run" in r.stdout and "200 rows" in r.stdout
    assert local_counts(tmp_path)[1] == 0


def test_overlapping_run_is_refused(tmp_path, fakes):
    f = fakes()
    path = cfg_file(tmp_path, f)
    with JobLock(tmp_path / "data", "comagic-export"):
        r = kit(path, "comagic", "export", "--from", "2026-01-01", "--to", "2026-01-01")
    assert r.returncode == 75 and "another run" in r.stderr
    assert f.report_requests == 0


def test_api_failure_is_a_clear_exit_1(tmp_path, fakes):
    f = fakes()
    r = kit(cfg_file(tmp_path, f, password="wrong"), "comagic", "export", "--from", "2026-01-01", "--to", "2026-01-01")
    assert r.returncode == 1
    assert "-32001 auth_error" in r.stderr and "wrong" not in r.stderr
    assert f.login_requests == 1
    r = kit(cfg_file(tmp_path, f, fields="id, start_time, colour", local_path="other.duckdb"), "comagic", "export",
            "--from", "2026-01-01", "--to", "2026-01-01")
    assert r.returncode == 1
    assert "[-32602 unexpected_parameters] (field fields)" in r.stderr


def test_changed_fields_are_refused_not_mixed_into_the_table(tmp_path, fakes):
    f = fakes(calls=100, days=1)
    export.run(cfg_of(tmp_path, f, fields="id, start_time, tags"), D0, D0)
    from asterisk_kit.comagic.destinations import DestinationError
    with pytest.raises(DestinationError, match="point local_path at a new file"):
        export.run(cfg_of(tmp_path, f, fields="id, start_time, campaign_name"), D0, D0)
    assert local_counts(tmp_path)[1] == 100


def test_config_cross_checks_name_section_and_keys(tmp_path, fakes):
    f = fakes()
    text = ini(tmp_path, f, login="", destination="bigquery")
    with pytest.raises(config.ConfigError) as e:
        config.parse_text(text, tmp_path / "kit.ini")
    msg = str(e.value)
    assert f"{tmp_path}/kit.ini: [comagic] login, password, access_token: set login and password" in msg
    assert "[comagic] bigquery_project, bigquery_dataset: required when destination = bigquery" in msg
    (tmp_path / "bad.ini").write_text(ini(tmp_path, f, chunk_days=120))
    r = kit(tmp_path / "bad.ini", "comagic", "export")
    assert r.returncode == 2 and "[comagic] chunk_days: expected an integer from 1 to 89" in r.stderr


def test_missing_analytics_extra_says_what_to_install(tmp_path, fakes):
    f = fakes()
    code = ("import sys; sys.modules['duckdb'] = None; from asterisk_kit.cli import main; "
            f"sys.exit(main(['--config', {str(cfg_file(tmp_path, f))!r}, 'comagic', 'export']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "pip install 'asterisk-kit[analytics]'" in r.stderr


def test_cli_module_import_is_light():
    code = ("import sys, asterisk_kit.comagic.cli, asterisk_kit.comagic, asterisk_kit.comagic.api; "
            "from asterisk_kit import cli; cli.build_parser(); "
            "print([m for m in sys.modules if m.split('.')[0] in ('pandas', 'pyarrow', 'duckdb', 'numpy') "
            "or m.startswith('google.cloud')])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_doctor_checks_log_in(tmp_path, fakes):
    from asterisk_kit.comagic import doctor_checks
    f = fakes()
    got = {n: (ok, d) for n, ok, d in doctor_checks(cfg_of(tmp_path, f))}
    assert got["comagic"] == (True, f"logged in to {f.url} as analytics")
    got = {n: (ok, d) for n, ok, d in doctor_checks(cfg_of(tmp_path, f, password="nope"))}
    assert got["comagic"][0] is False and "auth_error" in got["comagic"][1]
    got = {n: (ok, d) for n, ok, d in doctor_checks(cfg_of(tmp_path, f, login="", password="",
                                                            access_token="bad-key"))}
    assert got["comagic"][0] is False and "access_token_invalid" in got["comagic"][1]
    bq = fakes(FakeBigQuery)
    got = {n: (ok, d) for n, ok, d in doctor_checks(cfg_of(tmp_path, f, **bq_keys(bq)))}
    assert got["comagic destination"] == (True, "BigQuery dataset of proj.marketing.calls will be created")
    bq.stop()
    got = {n: (ok, d) for n, ok, d in doctor_checks(cfg_of(tmp_path, f, **bq_keys(bq)))}
    assert got["comagic destination"][0] is False and "proj.marketing.calls" in got["comagic destination"][1]


# ---- the job, BigQuery ---------------------------------------------------------------------------

def bq_keys(bq):
    return dict(destination="bigquery", bigquery_project="proj", bigquery_dataset="marketing",
                bigquery_table="calls", bigquery_api_endpoint=bq.url)


@pytest.mark.timeout(400)   # ~100 load jobs, each polled by the client (>= 1 s a job, as with real BigQuery)
def test_bigquery_export_day_partitions_replace_and_rerun_stable(tmp_path, fakes):
    f = fakes(calls=3000, days=100, minute_limit=10, minute_window=0.5)
    bq = fakes(FakeBigQuery)
    f.faults.update({2: "expire_token", 4: "limit_exceeded", 6: "internal_error"})
    path = cfg_file(tmp_path, f, chunk_days=89, page_limit=1000, **bq_keys(bq))
    last = D0 + dt.timedelta(days=101)   # two empty days at the end
    r = kit(path, "comagic", "export", "--from", str(D0), "--to", str(last), timeout=360)
    assert r.returncode == 0, r.stdout + r.stderr
    table = bq.tables["proj.marketing.calls"]
    assert table["resource"]["timePartitioning"] == {"type": "DAY", "field": "PARTITION_DATE"}
    assert {x["name"]: (x["type"], x.get("mode")) for x in table["resource"]["schema"]["fields"]}["tags"] == \
        ("STRING", "REPEATED")
    assert bq.partition_counts("proj.marketing.calls") == expected(f, D0, last)
    ids = [row["id"] for row in bq.rows("proj.marketing.calls")]
    assert len(ids) == len(set(ids)) == 3000
    assert bq.load_requests == [f"calls${d:%Y%m%d}" for d in export.day_range(D0, last)]   # each day once
    assert bq.job_polls >= 102   # every load job was polled until DONE
    # Every load job: the day's partition replaced (WRITE_TRUNCATE), with the explicit schema, no inference.
    loads = [j["configuration"]["load"] for j in bq.jobs.values()]
    assert len(loads) == 102
    want = {"id": ("INTEGER", "REQUIRED"), "start_time": ("DATETIME", "REQUIRED"), "is_lost": ("BOOLEAN", "NULLABLE"),
            "talk_duration": ("INTEGER", "NULLABLE"), "visits_count": ("INTEGER", "NULLABLE"),
            "campaign_name": ("STRING", "NULLABLE"), "tags": ("STRING", "REPEATED"),
            "attributes": ("STRING", "REPEATED"), "PARTITION_DATE": ("DATE", "REQUIRED")}
    for load in loads:
        assert load["writeDisposition"] == "WRITE_TRUNCATE" and not load.get("autodetect"), load
        assert load["sourceFormat"] == "PARQUET"
        got = {x["name"]: (x["type"], x.get("mode", "NULLABLE")) for x in load["schema"]["fields"]}
        assert {k: got[k] for k in want} == want
        assert [x["name"] for x in load["schema"]["fields"]] == \
            [x["name"] for x in table["resource"]["schema"]["fields"]]

    r = kit(path, "comagic", "export", "--from", "2026-01-10", "--to", "2026-01-12", timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(bq.rows("proj.marketing.calls")) == 3000
    assert bq.partition_counts("proj.marketing.calls") == expected(f, D0, last)


def test_bigquery_incremental_records_only_completed_loads(tmp_path, fakes):
    f = fakes(calls=600, days=6)
    bq = fakes(FakeBigQuery)
    cfg = cfg_of(tmp_path, f, first_date="2026-01-01", chunk_days=3, **bq_keys(bq))
    export.run(cfg, today=dt.date(2026, 1, 3))          # loads Jan 1-2
    bq.fail_next_load = "Backend error"                 # the Jan 3 load fails
    with pytest.raises(Exception, match="Backend error"):
        export.run(cfg, today=dt.date(2026, 1, 7))
    s = export.run(cfg, today=dt.date(2026, 1, 7))
    assert s.days == export.day_range(dt.date(2026, 1, 3), dt.date(2026, 1, 6))
    assert bq.partition_counts("proj.marketing.calls") == expected(f, D0, dt.date(2026, 1, 6))
    assert len(bq.rows("proj.marketing.calls")) == 600


def test_fake_bigquery_rejects_rows_outside_the_partition_and_takes_resumable_uploads(fakes):
    import pandas as pd
    from google.api_core.exceptions import BadRequest
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery
    bq = fakes(FakeBigQuery)
    client = bigquery.Client(project="proj", credentials=AnonymousCredentials(),
                             client_options={"api_endpoint": bq.url})
    client.create_dataset("proj.d")
    schema = [bigquery.SchemaField("s", "STRING"), bigquery.SchemaField("PARTITION_DATE", "DATE")]
    table = bigquery.Table("proj.d.t", schema=schema)
    table.time_partitioning = bigquery.TimePartitioning(field="PARTITION_DATE")
    client.create_table(table)
    cfg = bigquery.LoadJobConfig(schema=schema, write_disposition="WRITE_TRUNCATE")
    df = pd.DataFrame({"s": ["a", "b"], "PARTITION_DATE": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]})
    with pytest.raises(BadRequest, match="different partitions"):
        client.load_table_from_dataframe(df, "proj.d.t$20260101", job_config=cfg).result(timeout=30)
    assert bq.rows("proj.d.t") == []
    # > 5 MiB goes through the resumable protocol (POST for a session, PUT of the bytes).
    big = pd.DataFrame({"s": [os.urandom(60).hex() for _ in range(60000)],
                        "PARTITION_DATE": [dt.date(2026, 1, 1)] * 60000})
    client.load_table_from_dataframe(big, "proj.d.t$20260101", job_config=cfg).result(timeout=60)
    assert bq.resumable_sessions == 1 and bq.partition_counts("proj.d.t") == {dt.date(2026, 1, 1): 60000}
    client.load_table_from_dataframe(big[:10], "proj.d.t$20260101", job_config=cfg).result(timeout=60)
    assert bq.partition_counts("proj.d.t") == {dt.date(2026, 1, 1): 10}
    append = bigquery.LoadJobConfig(schema=schema, write_disposition="WRITE_APPEND")
    client.load_table_from_dataframe(big[:5], "proj.d.t$20260101", job_config=append).result(timeout=60)
    client.load_table_from_dataframe(df[1:], "proj.d.t$20260102", job_config=append).result(timeout=60)
    assert bq.partition_counts("proj.d.t") == {dt.date(2026, 1, 1): 15, dt.date(2026, 1, 2): 1}


def test_killed_run_leaves_only_whole_days_and_rerun_completes(tmp_path, fakes):
    today = export.today_in("Europe/Moscow")
    first = today - dt.timedelta(days=12)
    # Slow API (4 requests per second): the run is still going when it is killed.
    f = fakes(calls=1200, days=12, first_day=first, minute_limit=4, minute_window=1.0)
    path = cfg_file(tmp_path, f, first_date=first, chunk_days=1, page_limit=50)
    proc = subprocess.Popen([str(sys.executable), "-m", "asterisk_kit", "--config", str(path), "comagic", "export"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while f.report_requests < 9 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=10)
    assert proc.returncode == -9
    per_day, total, distinct, loaded = local_counts(tmp_path)
    assert 0 < len(loaded) < 12
    assert per_day == {d: n for d, n in expected(f, first, today).items() if d in loaded}  # whole days only
    r = kit(path, "comagic", "export", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    per_day, total, distinct, loaded = local_counts(tmp_path)
    assert loaded == set(export.day_range(first, today - dt.timedelta(days=1)))
    assert per_day == expected(f, first, today - dt.timedelta(days=1)) and total == distinct


def test_install_puts_the_export_in_cron(tmp_path, fakes):
    f = fakes()
    path = cfg_file(tmp_path, f)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "extensions.conf").write_text("[default]\n")
    kit(path, "install", "--asterisk-etc", str(etc), "--no-initd", "--cron-dir", str(tmp_path / "cron.d"),
        check=True)
    lines = [ln for ln in (tmp_path / "cron.d" / "asterisk-kit").read_text().splitlines() if "comagic" in ln
             and not ln.startswith("#")]
    assert len(lines) == 1 and lines[0].startswith("40 * * * * root ")
    assert lines[0].split(" root ", 1)[1].startswith(f"{BIN_KIT} --config {path} comagic export"), lines


def test_page_decoder_reads_what_the_standard_json_reads():
    """The export parses pages with orjson when it is installed; what orjson refuses (an integer
    beyond 64 bits, NaN, a lone surrogate escape) must still be read as json reads it, and what
    neither reads must stay a ValueError (the client turns it into its 'not JSON' error)."""
    raw = b'{"a": 18446744073709551616, "b": NaN, "c": "\\ud800", "d": [1, "\xd0\x9c", null]}'
    got = api.decode_json(raw)
    assert got["a"] == 18446744073709551616 and got["b"] != got["b"] and got["c"] == "\ud800"
    assert got["d"] == [1, "М", None]
    with pytest.raises(ValueError):
        api.decode_json(b"<html>Bad Gateway</html>")
