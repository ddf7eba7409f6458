"""The autodialer page in headless Chromium (and raw HTTP for what a browser cannot send), against
the real testbed Asterisk: phones, rejected input, schedule, run now, results."""
from __future__ import annotations

import json
import re
import sqlite3

import pytest
import requests
from selenium.webdriver.common.by import By

from testbed.browser import login, wait_for
from testbed.dialer import dialer_config, dialled, install_callee
from testbed.kitcli import BIN, kit
from testbed.webserver import WebServer
from tests.test_dialer import assert_call_files_mean_only

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]
PASSWORD = "dialer pass 1"


@pytest.fixture(scope="module")
def site(tmp_path_factory, asterisk):
    import subprocess
    d = tmp_path_factory.mktemp("dialer-web")
    log = d / "callee.log"
    install_callee(asterisk, log)
    cfg = dialer_config(d, asterisk, bundle=5, timeout=1)
    kit(cfg, "install", "--asterisk-etc", str(asterisk.etc_dir), "--no-initd", "--no-cron", "--reload", check=True)
    subprocess.run([str(BIN), "--config", str(cfg), "user", "add", "olga", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    srv = WebServer(cfg).start()
    srv.cfg, srv.callee_log = cfg, log
    yield srv
    srv.stop()


def phones(site):
    c = sqlite3.connect(site.cfg.parent / "data" / "asterisk-kit.sqlite")
    return {r[0]: (r[1], r[2]) for r in c.execute("SELECT number, digit, comment FROM dialer_phones")}


def rows(drv):
    return {tr.get_attribute("data-number"): tr
            for tr in drv.find_elements(By.CSS_SELECTOR, "#phone-table tr[data-number]")}


def add(drv, number, digit="", comment=""):
    for fid, v in (("add-number", number), ("add-digit", digit), ("add-comment", comment)):
        el = drv.find_element(By.ID, fid)
        el.clear()
        if v:
            el.send_keys(v)
    drv.find_element(By.ID, "add").click()


def test_phones_schedule_and_run_in_browser(site, browser):
    drv = browser
    login(drv, site.url, "olga", PASSWORD)
    drv.get(site.url + "/dialer")
    assert drv.find_element(By.CSS_SELECTOR, "h2").text == "Запуски"
    assert "Часовой пояс АТС" in drv.find_element(By.ID, "timezone").text

    add(drv, "+7 (999) 000-00-11", "", "Иванов")
    wait_for(lambda: "89990000011" in rows(drv), what="the added number")
    add(drv, "8 999 000 00 24", "1", "press one")
    wait_for(lambda: "89990000024" in rows(drv), what="the IVR number")
    # Rejected input: an inline error, the typed value kept, nothing saved.
    add(drv, "12345", "", "short")
    wait_for(lambda: drv.find_elements(By.CSS_SELECTOR, ".field-error[data-field=number]"), what="inline error")
    assert "8XXXXXXXXXX" in drv.find_element(By.CSS_SELECTOR, ".field-error[data-field=number]").text
    assert drv.find_element(By.ID, "add-number").get_attribute("value") == "12345"
    add(drv, "89990000031", "#", "")
    wait_for(lambda: drv.find_elements(By.CSS_SELECTOR, ".field-error[data-field=digit]"), what="digit error")
    assert set(phones(site)) == {"89990000011", "89990000024"}

    # Edit: give the first number a comment; then add and delete a third one.
    rows(drv)["89990000011"].find_element(By.CSS_SELECTOR, "a.edit").click()
    wait_for(lambda: drv.find_elements(By.ID, "edit-form"), what="the edit form")
    c = drv.find_element(By.CSS_SELECTOR, "#edit-form input[name=comment]")
    c.clear()
    c.send_keys("Иванов, водитель")
    drv.find_element(By.ID, "save-edit").click()
    wait_for(lambda: phones(site)["89990000011"][1] == "Иванов, водитель", what="the edit saved")
    add(drv, "89990000041")
    wait_for(lambda: "89990000041" in rows(drv), what="third number")
    rows(drv)["89990000041"].find_element(By.CSS_SELECTOR, "button.delete").click()
    wait_for(lambda: "89990000041" not in rows(drv), what="deleted row gone")
    assert set(phones(site)) == {"89990000011", "89990000024"}

    # Bulk import: rejected lines reported with the reason, the good ones merged (no duplicates).
    box = drv.find_element(By.ID, "bulk-text")
    box.send_keys("89990000011\n89990000051;1;new\nhello\n89990000051\nApplication: System\n")
    drv.find_element(By.ID, "bulk-submit").click()
    wait_for(lambda: drv.find_elements(By.ID, "bulk-report"), what="import report")
    report = drv.find_element(By.ID, "bulk-report").text
    assert "Добавлено: 1, обновлено: 1, отклонено: 2." in report
    assert "Строка 3 «hello»" in report and "Строка 5 «Application: System»" in report
    assert phones(site)["89990000051"] == ("", "")   # the later line of a duplicate wins
    assert len(phones(site)) == 3

    # Schedule: a bad time is refused inline and nothing is saved; then a good one.
    drv.find_element(By.ID, "day0").send_keys("09:30")
    drv.find_element(By.ID, "day1").send_keys("25:00")
    drv.find_element(By.ID, "schedule-save").click()
    wait_for(lambda: drv.find_elements(By.CSS_SELECTOR, ".field-error[data-field=day1]"), what="schedule error")
    db = sqlite3.connect(site.cfg.parent / "data" / "asterisk-kit.sqlite")
    assert db.execute("SELECT count(*) FROM dialer_schedule").fetchone()[0] == 0
    drv.find_element(By.ID, "day1").clear()
    drv.find_element(By.ID, "day1").send_keys("off")
    drv.find_element(By.ID, "schedule-save").click()
    wait_for(lambda: drv.find_elements(By.ID, "notice"), what="schedule saved")
    assert dict(db.execute("SELECT weekday, start FROM dialer_schedule").fetchall()) == {
        0: "09:30", 1: None, 2: None, 3: None, 4: None, 5: None, 6: None}
    assert drv.find_element(By.ID, "day0").get_attribute("value") == "09:30"

    # Run now (with its confirmation), then watch the results arrive.
    drv.find_element(By.ID, "run-now").click()
    wait_for(lambda: drv.switch_to.alert, what="the confirmation")
    drv.switch_to.alert.accept()
    wait_for(lambda: "/dialer/runs/" in drv.current_url, what="the run page")
    wait_for(lambda: drv.find_element(By.ID, "run-status").text == "завершён", timeout=90, interval=1,
             what="the run to finish")
    res = {tr.get_attribute("data-number"): tr for tr in drv.find_elements(By.CSS_SELECTOR, "#results tr[data-number]")}
    assert res["89990000011"].find_element(By.CSS_SELECTOR, ".result").get_attribute("data-result") == "answered"
    assert res["89990000024"].find_element(By.CSS_SELECTOR, ".pressed").text == "1"
    assert sorted(dialled(site.callee_log)) == ["89990000011", "89990000024", "89990000051"]

    # English works too.
    drv.find_element(By.ID, "lang-switch").click()
    wait_for(lambda: drv.find_element(By.ID, "run-status").text == "done", what="English run page")


def test_injection_through_http_is_refused(site):
    s = requests.Session()
    page = s.get(site.url + "/login", timeout=10)
    tok = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    s.post(site.url + "/login", data={"csrf": tok, "user": "olga", "password": PASSWORD}, timeout=10)
    tok = re.search(r'name="csrf" value="([^"]+)"', s.get(site.url + "/dialer", timeout=10).text).group(1)
    before = phones(site)
    for number, digit in (("89990000061\nApplication: System", ""), ("89990000061\rChannel: x", ""),
                          ("89990000061;", ""), ("89990000061#", ""), ("89990000061", "1\nSetvar: x=1"),
                          ("89990000061", "1;"), ("8999000006１", ""), ("89990000061" + "0" * 300, "")):
        r = s.post(site.url + "/dialer/phones", data={"csrf": tok, "number": number, "digit": digit}, timeout=10)
        assert r.status_code == 400, (number, digit)
    r = s.post(site.url + "/dialer/import", data={"csrf": tok, "text": "89990000071;1\r\nChannel: evil;;\n"},
               timeout=10)
    assert r.status_code == 200
    assert phones(site) == {**before, "89990000071": ("1", "")}
    # todo.json uploaded through the page's import form: the same allow-list.
    todo = json.dumps([{"number": "89990000091\nApplication: System"}, {"number": "89990000092", "dtmf": "1\r\n;x"},
                       {"number": "89990000093", "dtmf": "#"}, {"number": "89990000094", "dtmf": "3",
                                                                 "comment": "ok\nChannel: evil"}, [1], None])
    r = s.post(site.url + "/dialer/import", data={"csrf": tok},
               files={"file": ("todo.json", todo.encode(), "application/json")}, timeout=10)
    assert r.status_code == 200 and "Добавлено: 1, обновлено: 0, отклонено: 5." in r.text
    assert phones(site) == {**before, "89990000071": ("1", ""), "89990000094": ("3", "ok Channel: evil")}
    # Whatever the page stored renders to call files that mean exactly what was intended.
    assert_call_files_mean_only(site.cfg, {n: d for n, (d, _) in phones(site).items()})
    exported = s.get(site.url + "/dialer/export/todo.json", timeout=10).json()
    assert {"number": "89990000071", "dtmf": "1", "comment": ""} in exported
    anonymous = requests.get(site.url + "/dialer/export/todo.json", allow_redirects=False, timeout=10)
    assert anonymous.status_code in (302, 303)
    # A comment may hold anything: it is kept on one line and never reaches a call file.
    r = s.post(site.url + "/dialer/phones", data={"csrf": tok, "number": "89990000081", "digit": "",
                                                 "comment": "a\nChannel: evil\r\n# ; x"}, timeout=10)
    assert r.status_code == 200
    assert phones(site)["89990000081"] == ("", "a Channel: evil # ; x")
    # ... and is shown as text, never as markup.
    r = s.post(site.url + "/dialer/phones", data={"csrf": tok, "number": "89990000082", "digit": "",
                                                 "comment": "<script>alert(1)</script>"}, timeout=10)
    page = s.get(site.url + "/dialer", timeout=10).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    s.post(site.url + "/dialer/phones/89990000082/delete", data={"csrf": tok}, timeout=10)


def test_stop_from_the_run_page(site, browser):
    """Stop on the page (with its confirmation): what was not handed to Asterisk is withdrawn, no call
    file of the run is left in the spool, and no number is dialled twice."""
    drv = browser
    drv.get(site.url + "/dialer")
    if "/login" in drv.current_url:         # this module's browser may already be logged in
        login(drv, site.url, "olga", PASSWORD)
        drv.get(site.url + "/dialer")
    slow = [f"8999100{i:03d}3" for i in range(12)]           # ...3: rings without an answer
    drv.find_element(By.ID, "bulk-text").send_keys("\n".join(slow))
    drv.find_element(By.ID, "bulk-submit").click()
    wait_for(lambda: drv.find_elements(By.ID, "bulk-report"), what="import report")
    drv.find_element(By.ID, "run-now").click()
    wait_for(lambda: drv.switch_to.alert, what="the run confirmation")
    drv.switch_to.alert.accept()
    wait_for(lambda: "/dialer/runs/" in drv.current_url, what="the run page")
    run_id = int(drv.current_url.rstrip("/").rsplit("/", 1)[1])
    db = sqlite3.connect(site.cfg.parent / "data" / "asterisk-kit.sqlite")
    wait_for(lambda: db.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ? AND state != 'pending'",
                                (run_id,)).fetchone()[0] > 0, timeout=30, what="the first batch")
    wait_for(lambda: drv.find_element(By.ID, "stop").click() or True, what="the stop button")
    wait_for(lambda: drv.switch_to.alert, what="the stop confirmation")
    drv.switch_to.alert.accept()
    # (the earlier test switched this browser to English)
    wait_for(lambda: drv.find_element(By.ID, "run-status").text in ("остановлен", "stopped"), timeout=90, interval=1,
             what="the run to stop")
    assert db.execute("SELECT status FROM dialer_runs WHERE id = ?", (run_id,)).fetchone()[0] == "stopped"
    states = dict(db.execute("SELECT number, result FROM dialer_calls WHERE run_id = ?", (run_id,)).fetchall())
    assert None not in states.values() and "withdrawn" in states.values(), states
    withdrawn = [tr.get_attribute("data-number")
                 for tr in drv.find_elements(By.CSS_SELECTOR, "#results tr[data-number]")
                 if tr.find_element(By.CSS_SELECTOR, ".result").get_attribute("data-result") == "withdrawn"]
    assert sorted(withdrawn) == sorted(n for n, r in states.items() if r == "withdrawn")
    from asterisk_kit.config import load
    outgoing = load(str(site.cfg))["asterisk"]["spool_dir"]
    assert not [p for p in (outgoing / "outgoing").iterdir() if p.name.startswith(f"asterisk-kit-{run_id}-")]
    counts = {}
    for n in dialled(site.callee_log):
        counts[n] = counts.get(n, 0) + 1
    assert all(counts.get(n, 0) <= 1 for n in slow), counts
    assert sum(1 for n in slow if n in counts) < len(slow)
