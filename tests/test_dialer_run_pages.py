"""The run page live, its exports, "call the unanswered again" and the campaign's results page, in headless
Chromium against the real testbed Asterisk (the callee plays each number by its last digit)."""
from __future__ import annotations

import csv
import io
import re
import sqlite3
import subprocess
import time

import pytest
import requests
from selenium.webdriver.common.by import By

from testbed.browser import login, screenshots_fit, wait_for
from testbed.dialer import dialer_config, install_callee
from testbed.kitcli import BIN, kit
from testbed.webserver import WebServer

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]
PASSWORD = "run pages 1"
# ...1 answers, ...2 busy, ...3 rings without an answer, ...4 answers and presses 1
NUMBERS = {"89992000011": "Иванов; склад", "89992000022": "=1+2", "89992000033": "", "89992000044": "IVR"}
DIGITS = {"89992000044": "1"}
UNANSWERED = {"89992000022", "89992000033"}

DOM_RESULTS = ("return Array.from(document.querySelectorAll('#results tr[data-number]')).map(function (tr) {"
               " return [tr.getAttribute('data-number'), tr.querySelector('.result').getAttribute('data-result')]; })")
SCROLL_TO = "var e = document.getElementById(arguments[0]); e.scrollIntoView(); return true;"


@pytest.fixture(scope="module")
def site(tmp_path_factory, asterisk):
    d = tmp_path_factory.mktemp("dialer-run-pages")
    log = d / "callee.log"
    install_callee(asterisk, log)
    cfg = dialer_config(d, asterisk, bundle=5, timeout=1, max_retries=0)
    kit(cfg, "install", "--asterisk-etc", str(asterisk.etc_dir), "--no-initd", "--no-cron", "--reload", check=True)
    subprocess.run([str(BIN), "--config", str(cfg), "user", "add", "rita", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    srv = WebServer(cfg).start()
    srv.cfg = cfg
    srv.ticks = []
    yield srv
    for p in srv.ticks:
        p.wait(120)
    srv.stop()


def kit_store(site):
    from asterisk_kit.config import load
    from asterisk_kit.dialer import store
    cfg = load(str(site.cfg))
    return cfg, store.connect(cfg)


def db(site):
    c = sqlite3.connect(site.cfg.parent / "data" / "asterisk-kit.sqlite")
    c.row_factory = sqlite3.Row
    return c


def start_run(site, campaign_id=1) -> int:
    """A queued manual run of the campaign; a `dialer tick` process is started separately (tick())."""
    from asterisk_kit.dialer import campaigns, store
    cfg, conn = kit_store(site)
    return store.create_run(conn, "manual", time.strftime("%Y-%m-%d"), by_user="rita", campaign_id=campaign_id,
                            settings=campaigns.resolve(cfg, {}))


def tick(site):
    site.ticks.append(subprocess.Popen([str(BIN), "--config", str(site.cfg), "dialer", "tick"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def http(site) -> requests.Session:
    s = requests.Session()
    tok = re.search(r'name="csrf" value="([^"]+)"', s.get(site.url + "/login", timeout=10).text).group(1)
    s.post(site.url + "/login", data={"csrf": tok, "user": "rita", "password": PASSWORD}, timeout=10)
    return s


def csrf(s, site, path) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', s.get(site.url + path, timeout=10).text).group(1)


@pytest.fixture(scope="module")
def first_run(site, browser):
    """Run 1 over NUMBERS, watched on its page from before it starts until it ended: {number: (result
    the page showed, seconds from the outcome's recording to the page showing it)}, plus the run id."""
    from asterisk_kit.dialer import store
    from asterisk_kit.dialer.numbers import Entry
    _, conn = kit_store(site)
    store.upsert_phones(conn, [Entry(n, DIGITS.get(n, ""), c) for n, c in NUMBERS.items()])
    run_id = start_run(site)
    drv = browser
    login(drv, site.url, "rita", PASSWORD)
    drv.get(site.url + f"/dialer/runs/{run_id}")
    assert drv.find_element(By.ID, "run-status").text == "в очереди"
    drv.execute_script("window.kitMarker = 'loaded once';")
    tick(site)
    seen, recorded, conn = {}, {}, db(site)
    deadline = time.time() + 120
    while len(seen) < len(NUMBERS):
        assert time.time() < deadline, (seen, recorded)
        for r in conn.execute("SELECT number, result, finished FROM dialer_calls WHERE run_id = ? AND state = 'done'",
                              (run_id,)):
            recorded.setdefault(r["number"], (r["result"], r["finished"]))
        for number, shown in drv.execute_script(DOM_RESULTS):
            if number in recorded and shown == recorded[number][0] and number not in seen:
                seen[number] = (shown, time.time() - recorded[number][1])
        time.sleep(0.1)
    wait_for(lambda: drv.find_element(By.ID, "run-status").text == "завершён", timeout=90, what="the run to end")
    return run_id, seen


def test_run_page_updates_live_without_reload(site, browser, first_run):
    """Every outcome shows on the open page within 2 s of the runner recording it, the page is never
    reloaded (a marker set on load survives), and once the run ended the page offers the repeat."""
    run_id, seen = first_run
    drv = browser
    assert {n: r for n, (r, _) in seen.items()} == {
        "89992000011": "answered", "89992000022": "busy", "89992000033": "no_answer", "89992000044": "answered"}
    assert all(lag <= 2.0 for _, lag in seen.values()), seen
    assert drv.execute_script("return window.kitMarker") == "loaded once"
    assert drv.execute_script("return window.akRunPage.updates") > 2
    row = drv.find_element(By.CSS_SELECTOR, "#results tr[data-number='89992000044']")
    assert row.find_element(By.CSS_SELECTOR, ".pressed").text == "1"
    assert row.find_element(By.CSS_SELECTOR, ".comment").text == "IVR"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", row.find_element(By.CSS_SELECTOR, ".start").text)
    assert re.fullmatch(r"\d\d:\d\d:\d\d", row.find_element(By.CSS_SELECTOR, ".end").text)
    assert drv.find_element(By.ID, "run-finished").text != "—"
    assert drv.find_element(By.ID, "count-answered").text == "2"
    assert drv.find_element(By.ID, "count-unanswered").text == "2"
    assert drv.find_element(By.ID, "again").is_displayed() and not drv.find_element(By.ID, "stop").is_displayed()
    widths = {r.get_attribute("data-seg"): float(r.get_attribute("width"))
              for r in drv.find_elements(By.CSS_SELECTOR, "#progress rect")}
    assert widths == {"answered": 500.0, "unanswered": 500.0, "calling": 0.0, "waiting": 0.0}


def test_exports_hold_the_rows_of_the_page(site, browser, first_run):
    from openpyxl import load_workbook

    from asterisk_kit.dialer import export
    run_id, _ = first_run
    drv = browser
    page = {tr.get_attribute("data-number"): [tr.find_element(By.CSS_SELECTOR, f".{c}").text
                                              for c in ("comment", "result", "pressed", "attempts", "start")]
            for tr in drv.find_elements(By.CSS_SELECTOR, "#results tr[data-number]")}
    assert set(page) == set(NUMBERS)
    s = http(site)
    r = s.get(site.url + f"/dialer/runs/{run_id}/export.csv", timeout=30)
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == list(export.HEADERS["ru"])
    got = {x[0]: [x[1].lstrip("'") if x[1].startswith("'=") else x[1], x[5], x[6], x[2], x[4]] for x in rows[1:]}
    assert set(got) == set(page)
    for n, (comment, outcome, digit, attempts, last) in got.items():
        assert [comment, outcome, digit, attempts] == page[n][:4], (n, got[n], page[n])
        assert last.endswith(" " + page[n][4])
    r = s.get(site.url + f"/dialer/runs/{run_id}/export.xlsx", timeout=30)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    ws = load_workbook(io.BytesIO(r.content), read_only=True).active
    xrows = list(ws.iter_rows(values_only=True))
    assert xrows[0] == export.HEADERS["ru"]
    assert {x[0]: [x[1] or "", x[5], x[6] or "", str(x[2])] for x in xrows[1:]} == {n: v[:4] for n, v in page.items()}
    assert dict((x[0], x[1]) for x in xrows[1:])["89992000022"] == "=1+2"   # text, not a formula
    # In the page's language.
    s.get(site.url + "/lang/en", timeout=10)
    en = s.get(site.url + f"/dialer/runs/{run_id}/export.csv", timeout=30).content.decode("utf-8-sig")
    assert en.splitlines()[0].split(";")[0] == "Number" and ";answered;" in en


def test_again_calls_only_the_unanswered(site, browser, first_run):
    from asterisk_kit.dialer import store
    from asterisk_kit.dialer.numbers import Entry
    run_id, _ = first_run
    drv = browser
    _, kconn = kit_store(site)
    store.update_campaign(kconn, 1, state="paused")     # the new run stays active until resumed below
    drv.get(site.url + f"/dialer/runs/{run_id}")
    drv.find_element(By.ID, "again").click()
    alert = wait_for(lambda: drv.switch_to.alert, what="the confirmation")
    assert "(2)" in alert.text
    alert.accept()
    wait_for(lambda: drv.current_url.rstrip("/") != site.url + f"/dialer/runs/{run_id}", what="the new run's page")
    new = int(drv.current_url.rstrip("/").rsplit("/", 1)[1])
    assert "2" in drv.find_element(By.ID, "notice").text
    conn = db(site)
    assert {r[0] for r in conn.execute("SELECT number FROM dialer_calls WHERE run_id = ?", (new,))} == UNANSWERED
    r = conn.execute("SELECT trigger, campaign_id, by_user FROM dialer_runs WHERE id = ?", (new,)).fetchone()
    assert tuple(r) == ("manual", 1, "rita")
    # While it is active, a second repeat is refused with a message, and nothing is created.
    s = http(site)
    tok = csrf(s, site, f"/dialer/runs/{run_id}")
    page = s.post(site.url + f"/dialer/runs/{run_id}/again", data={"csrf": tok}, timeout=10)
    assert f"уже идёт запуск {new}" in page.text
    assert conn.execute("SELECT max(id) FROM dialer_runs").fetchone()[0] == new
    store.update_campaign(kconn, 1, state="active")
    wait_for(lambda: drv.find_element(By.ID, "run-status").text == "завершён", timeout=90, interval=0.5,
             what="the repeat to end")
    assert {r[0]: r[1] for r in conn.execute("SELECT number, result FROM dialer_calls WHERE run_id = ?", (new,))} \
        == {"89992000022": "busy", "89992000033": "no_answer"}
    # A run where everyone answered: nothing to call, said so.
    camp = store.create_campaign(kconn, "all answered")
    store.upsert_phones(kconn, [Entry("89992000091")], campaign_id=camp)
    done = start_run(site, camp)
    with kconn:
        kconn.execute("UPDATE dialer_calls SET state = 'done', result = 'answered', attempts = 1 WHERE run_id = ?",
                      (done,))
        kconn.execute("UPDATE dialer_runs SET status = 'done' WHERE id = ?", (done,))
    page = s.post(site.url + f"/dialer/runs/{done}/again", data={"csrf": tok}, timeout=10)
    assert page.url.endswith(f"/dialer/runs/{done}") and f"Звонить некому: в запуске {done}" in page.text
    assert conn.execute("SELECT max(id) FROM dialer_runs").fetchone()[0] == done


def test_large_run_sends_one_page(site):
    """5 000 numbers: the page and its JSON carry 50 rows and the counts, searchable and paged."""
    from asterisk_kit.dialer import store
    from asterisk_kit.dialer.numbers import Entry
    _, conn = kit_store(site)
    camp = store.create_campaign(conn, "large")
    store.upsert_phones(conn, [Entry(f"8999300{i:04d}", "", f"client {i}") for i in range(5000)], campaign_id=camp)
    run_id = start_run(site, camp)
    store.request_stop(conn, run_id)            # queued: withdrawn at once, nothing dialled
    s = http(site)
    j = s.get(site.url + f"/dialer/runs/{run_id}.json", timeout=10).json()
    assert len(j["rows"]) == 50 and j["pages"] == 100 and j["counts"]["total"] == 5000
    assert j["counts"]["unanswered"] == 5000 and j["rows"][0]["number"] == "89993000000"
    last = s.get(site.url + f"/dialer/runs/{run_id}.json?p=100", timeout=10).json()
    assert last["page"] == 100 and last["rows"][-1]["number"] == "89993004999"
    found = s.get(site.url + f"/dialer/runs/{run_id}.json", params={"q": "client 4321"}, timeout=10).json()
    assert [r["number"] for r in found["rows"]] == ["89993004321"] and found["matched"] == 1
    html = s.get(site.url + f"/dialer/runs/{run_id}?p=2", timeout=10).text
    assert html.count("<tr data-number=") == 50 and 'data-number="89993000050"' in html


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_run_and_results_pages_fit_a_phone(site, browser, first_run, lang):
    run_id, _ = first_run
    drv = browser
    drv.get(site.url + f"/lang/{lang}?next=/")
    assert screenshots_fit(drv, site.url + f"/dialer/runs/{run_id}", f"dialer-run-{lang}") == {}
    assert drv.find_elements(By.ID, "dialer-nav")
    # ... and scrolled to the tables, the part that could widen a phone's page.
    assert screenshots_fit(drv, site.url + f"/dialer/runs/{run_id}", f"dialer-run-table-{lang}",
                           ready=lambda d: d.execute_script(SCROLL_TO, "results")) == {}
    assert screenshots_fit(drv, site.url + "/dialer/c/1/results", f"dialer-results-{lang}") == {}
    assert screenshots_fit(drv, site.url + "/dialer/c/1/results", f"dialer-results-table-{lang}",
                           ready=lambda d: d.execute_script(SCROLL_TO, "runs")) == {}
    assert drv.find_elements(By.ID, "dialer-nav")
    links = [a.get_attribute("href") for a in drv.find_elements(By.CSS_SELECTOR, "#runs a")]
    assert site.url + f"/dialer/runs/{run_id}" in links and len(links) >= 2
    assert drv.find_elements(By.CSS_SELECTOR, "#day-chart figure rect.seg-answered")
    title = drv.find_element(By.TAG_NAME, "h1").text
    assert title.startswith("Результаты" if lang == "ru" else "Results")
