"""The campaign pages (/dialer, /dialer/c/<id>) in headless Chromium (and raw HTTP for what a browser cannot
send), against the real testbed Asterisk: campaigns created and edited, refused input shown at the top and kept,
no resubmission on reload, pause / resume / copy / archive, run now and stop, screenshots that fit a phone."""
from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from testbed.browser import login, screenshots_fit, wait_for
from testbed.dialer import dialer_config, dialled, install_callee
from testbed.kitcli import BIN, kit
from testbed.webserver import WebServer
from tests.test_dialer import asterisk_reads

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]
PASSWORD = "dialer pass 1"
SALES = '"Sales" <84957654321>'


@pytest.fixture(scope="module")
def site(tmp_path_factory, asterisk):
    import subprocess
    d = tmp_path_factory.mktemp("dialer-web")
    log = d / "callee.log"
    install_callee(asterisk, log)
    cfg = dialer_config(d, asterisk, bundle=5, timeout=1, callerids=f"{SALES}, 84950000001")
    kit(cfg, "install", "--asterisk-etc", str(asterisk.etc_dir), "--no-initd", "--no-cron", "--reload", check=True)
    subprocess.run([str(BIN), "--config", str(cfg), "user", "add", "olga", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    srv = WebServer(cfg).start()
    srv.cfg, srv.callee_log = cfg, log
    yield srv
    srv.stop()


def db(site):
    return sqlite3.connect(site.cfg.parent / "data" / "asterisk-kit.sqlite")


def kit_cfg(site):
    from asterisk_kit.config import load
    return load(str(site.cfg))


def campaign_ids(site, name):
    return [r[0] for r in db(site).execute("SELECT id FROM dialer_campaigns WHERE name = ? ORDER BY id", (name,))]


def settings(site, cid):
    return json.loads(db(site).execute("SELECT settings FROM dialer_campaigns WHERE id = ?", (cid,)).fetchone()[0])


def state(site, cid):
    return db(site).execute("SELECT state FROM dialer_campaigns WHERE id = ?", (cid,)).fetchone()[0]


def add_numbers(site, cid, numbers):
    """The numbers page is another module's (web_numbers): the list is filled through the store here."""
    from asterisk_kit.dialer import store
    from asterisk_kit.dialer.numbers import Entry
    store.upsert_phones(store.connect(kit_cfg(site)), [Entry(n) for n in numbers], campaign_id=cid)


def fill(drv, values):
    for fid, v in values.items():
        el = drv.find_element(By.ID, fid)
        if el.tag_name == "select":
            Select(el).select_by_value(v)
        else:
            el.clear()
            if v:
                el.send_keys(v)


def logged_in(drv, site, path):
    drv.get(site.url + path)
    if "/login" in drv.current_url:         # this module's browser may already be logged in
        login(drv, site.url, "olga", PASSWORD)
        drv.get(site.url + path)


def create(drv, site, name):
    logged_in(drv, site, "/dialer")
    fill(drv, {"name": name})
    drv.find_element(By.ID, "create").click()
    wait_for(lambda: re.search(r"/dialer/c/\d+$", drv.current_url), what=f"the page of {name}")
    return int(drv.current_url.rsplit("/", 1)[1])


def confirm(drv, accept=True):
    wait_for(lambda: drv.switch_to.alert, what="the confirmation")
    (drv.switch_to.alert.accept if accept else drv.switch_to.alert.dismiss)()


def text(drv, el_id):
    return drv.find_element(By.ID, el_id).text


def expected_next(windows, tz):
    """'Пн 09:00' for the next window start after now, computed here from the windows typed in."""
    now = dt.datetime.now(tz)
    for i in range(8):
        day = now + dt.timedelta(days=i)
        if day.weekday() in windows:
            hh, mm = map(int, windows[day.weekday()].split(":"))
            at = day.replace(hour=hh, minute=mm, second=0, microsecond=0)
            if at > now:
                return ("Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс")[at.weekday()] + f" {at:%H:%M}"
    raise AssertionError("no window")


def test_campaigns_settings_windows_and_states_in_browser(site, browser):
    drv = browser
    login(drv, site.url, "olga", PASSWORD)
    drv.get(site.url + "/dialer")
    assert drv.find_element(By.TAG_NAME, "h1").text == "Кампании обзвона"
    assert "Campaign 1" in drv.find_element(By.ID, "campaign-list").text

    # Create two campaigns; a refused (empty) name is reported at the top, nothing created.
    drivers = create(drv, site, "Водители")
    assert "Кампания «Водители» создана." in text(drv, "notice")
    drv.refresh()                                               # a 303 was followed: reload re-sends nothing
    assert not drv.find_elements(By.ID, "notice")
    stock = create(drv, site, "Склад")
    assert campaign_ids(site, "Водители") == [drivers] and campaign_ids(site, "Склад") == [stock]
    drv.get(site.url + "/dialer")
    fill(drv, {"name": "   "})
    drv.execute_script("document.getElementById('name').removeAttribute('required')")
    drv.find_element(By.ID, "create").click()
    wait_for(lambda: drv.find_elements(By.ID, "form-errors"), what="the name error")
    assert drv.find_element(By.CSS_SELECTOR, "#form-errors a").get_attribute("href").endswith("#name")
    listed = {tr.get_attribute("data-campaign")
              for tr in drv.find_elements(By.CSS_SELECTOR, "#campaign-list tr[data-campaign]")}
    assert listed == {"1", str(drivers), str(stock)}

    # Settings with their units; caller ID only from the admin's list.
    drv.get(site.url + f"/dialer/c/{drivers}")
    units = {el.get_attribute("id"): el.find_element(By.XPATH, "following-sibling::span[@class='unit']").text
             for el in drv.find_elements(By.CSS_SELECTOR, ".with-unit input")}
    assert units == {"bundle": "номеров за раз", "pause": "секунд", "max_in_progress": "звонков", "wait_time": "секунд"}
    assert [o.get_attribute("value") for o in Select(drv.find_element(By.ID, "callerid")).options] == [
        "", '"Kit test" <84950000000>', SALES, "84950000001"]
    fill(drv, {"bundle": "3", "pause": "20", "max_in_progress": "4", "callerid": SALES, "optout_digit": "9",
               "retry_busy_n": "2", "retry_busy_min": "10"})
    drv.find_element(By.ID, "save-settings").click()
    wait_for(lambda: drv.find_elements(By.ID, "notice"), what="settings saved")
    assert text(drv, "notice") == "Настройки сохранены."
    saved = settings(site, drivers)
    assert (saved["bundle"], saved["pause"], saved["max_in_progress"], saved["callerid"], saved["optout_digit"],
            saved["retries"]["busy"]) == (3, 20, 4, SALES, "9", [2, 10])
    drv.refresh()
    assert not drv.find_elements(By.ID, "notice")              # shown once, nothing posted again

    # Refused values: listed at the top, each linking to its field; typed input kept; nothing saved.
    fill(drv, {"name": "Водители и курьеры", "bundle": "0", "pause": "45", "optout_digit": "#",
               "retry_no_answer_min": "99999"})
    drv.find_element(By.ID, "save-settings").click()
    wait_for(lambda: drv.find_elements(By.ID, "form-errors"), what="the errors at the top")
    links = {a.get_attribute("href").rsplit("#", 1)[1]: a.text
             for a in drv.find_elements(By.CSS_SELECTOR, "#form-errors a")}
    assert set(links) == {"bundle", "optout_digit", "retry_no_answer_min"}, links
    assert links["bundle"] == "Пачка: целое число от 1 до 1000"
    for fid in links:                                           # each link's target is the field
        assert drv.find_element(By.ID, fid).get_attribute("name") == fid
    assert [drv.find_element(By.ID, f).get_attribute("value") for f in ("name", "bundle", "pause", "optout_digit",
                                                                          "retry_no_answer_min")] == [
        "Водители и курьеры", "0", "45", "#", "99999"]
    assert settings(site, drivers) == saved
    assert campaign_ids(site, "Водители") == [drivers]
    drv.refresh()                                               # the errors were shown once; nothing re-sent
    assert not drv.find_elements(By.ID, "form-errors")
    assert drv.find_element(By.ID, "bundle").get_attribute("value") == "3"

    # Weekly windows: a bad end is refused with its link and the typed times kept; then saved.
    fill(drv, {"start0": "09:00", "end0": "17:00", "start1": "10:00", "start2": "08:00", "end2": "25:00"})
    drv.find_element(By.ID, "save-windows").click()
    wait_for(lambda: drv.find_elements(By.ID, "form-errors"), what="the window error")
    assert [a.get_attribute("href").rsplit("#", 1)[1]
            for a in drv.find_elements(By.CSS_SELECTOR, "#form-errors a")] == ["end2"]
    assert drv.find_element(By.ID, "end2").get_attribute("value") == "25:00"
    assert drv.find_element(By.ID, "start0").get_attribute("value") == "09:00"
    assert db(site).execute("SELECT count(*) FROM dialer_schedule WHERE campaign_id = ? AND start IS NOT NULL",
                            (drivers,)).fetchone()[0] == 0
    fill(drv, {"start2": "", "end2": ""})
    drv.find_element(By.ID, "save-windows").click()
    wait_for(lambda: drv.find_elements(By.ID, "notice"), what="windows saved")
    assert dict((r[0], (r[1], r[2])) for r in db(site).execute(
        'SELECT weekday, start, "end" FROM dialer_schedule WHERE campaign_id = ? AND start IS NOT NULL',
        (drivers,))) == {0: ("09:00", "17:00"), 1: ("10:00", None)}
    from asterisk_kit.dialer import schedule
    want = expected_next({0: "09:00", 1: "10:00"}, schedule.tz(kit_cfg(site)))
    assert text(drv, "next-run") == f"следующий запуск: {want}"
    drv.get(site.url + "/dialer")
    row = drv.find_element(By.CSS_SELECTOR, f"#campaign-list tr[data-campaign='{drivers}']")
    assert row.find_element(By.CSS_SELECTOR, ".next-run").text == want        # under "Следующий запуск"
    assert drv.find_element(By.CSS_SELECTOR, f"#campaign-list tr[data-campaign='{stock}'] .next-run").text \
        == "нет расписания"

    # Pause / resume, copy, archive (asks first) and back.
    drv.get(site.url + f"/dialer/c/{drivers}")
    drv.find_element(By.ID, "state-pause").click()
    wait_for(lambda: state(site, drivers) == "paused", what="paused")
    assert text(drv, "campaign-state") == "на паузе" and not drv.find_elements(By.ID, "run-now")
    drv.find_element(By.ID, "state-resume").click()
    wait_for(lambda: state(site, drivers) == "active", what="resumed")
    drv.find_element(By.ID, "copy").click()
    wait_for(lambda: campaign_ids(site, "Водители (копия)"), what="the copy")
    copy_id = campaign_ids(site, "Водители (копия)")[0]
    wait_for(lambda: drv.current_url.endswith(f"/dialer/c/{copy_id}"), what="the copy's page")
    assert settings(site, copy_id) == saved and drv.find_element(By.ID, "start0").get_attribute("value") == "09:00"
    drv.refresh()
    assert campaign_ids(site, "Водители (копия)") == [copy_id]  # reload made no second copy
    drv.find_element(By.ID, "state-archive").click()
    confirm(drv, accept=False)
    assert state(site, copy_id) == "active"
    drv.find_element(By.ID, "state-archive").click()
    confirm(drv)
    wait_for(lambda: state(site, copy_id) == "archived", what="archived")
    drv.get(site.url + "/dialer")
    assert str(copy_id) not in {tr.get_attribute("data-campaign")
                                for tr in drv.find_elements(By.CSS_SELECTOR, "#campaign-list tr[data-campaign]")}
    drv.find_element(By.ID, "toggle-archived").click()
    wait_for(lambda: drv.find_elements(By.CSS_SELECTOR, f"tr[data-campaign='{copy_id}'][data-state=archived]"),
             what="the archived campaign listed")
    drv.find_element(By.CSS_SELECTOR, f"tr[data-campaign='{copy_id}'] td.name a").click()
    wait_for(lambda: drv.find_elements(By.ID, "state-unarchive"), what="the archived campaign's page")
    assert not drv.find_elements(By.ID, "run-now")
    drv.find_element(By.ID, "state-unarchive").click()
    wait_for(lambda: state(site, copy_id) == "paused", what="back from the archive, paused")


def test_run_now_and_stop_on_the_campaign_page(site, browser):
    """Run now (with its confirmation) dials the campaign's own list with its settings, the campaign's
    IVR digit reaching numbers without one of their own; the list shows the last run's outcomes; Stop
    withdraws what was not handed over, leaves no call file in the spool and dials no one twice."""
    drv = browser
    cid = create(drv, site, "Курьеры")
    fill(drv, {"ivr_digit": "1", "bundle": "5"})
    drv.find_element(By.ID, "save-settings").click()
    wait_for(lambda: settings(site, cid).get("ivr_digit") == "1", what="settings saved")
    add_numbers(site, cid, ["89990000011", "89990000024", "89990000052"])  # answers / presses 1 / busy
    drv.get(site.url + f"/dialer/c/{cid}")
    drv.find_element(By.ID, "run-now").click()
    confirm(drv)
    wait_for(lambda: "/dialer/runs/" in drv.current_url, what="the run's page")
    run_id = int(drv.current_url.rstrip("/").rsplit("/", 1)[1])
    c = db(site)
    assert c.execute("SELECT campaign_id, trigger FROM dialer_runs WHERE id = ?",
                     (run_id,)).fetchone() == (cid, "manual")
    wait_for(lambda: c.execute("SELECT status FROM dialer_runs WHERE id = ?", (run_id,)).fetchone()[0] == "done",
             timeout=90, interval=1, what="the run to finish")
    res = {r[0]: (r[1], r[2], r[3]) for r in c.execute("SELECT number, digit, result, pressed FROM dialer_calls "
                                                       "WHERE run_id = ?", (run_id,))}
    assert res == {"89990000011": ("1", "answered", None), "89990000024": ("1", "answered", "1"),
                   "89990000052": ("1", "busy", None)}, res
    assert sorted(dialled(site.callee_log)) == ["89990000011", "89990000024", "89990000052"]
    drv.get(site.url + "/dialer")
    last = drv.find_element(By.CSS_SELECTOR, f"tr[data-campaign='{cid}'] .last-run").text
    assert f"#{run_id}" in last and "ответил: 2" in last and "занято: 1" in last, last

    slow = [f"8999100{i:03d}3" for i in range(12)]           # ...3: rings without an answer
    add_numbers(site, cid, slow)
    drv.get(site.url + f"/dialer/c/{cid}")
    drv.find_element(By.ID, "run-now").click()
    confirm(drv)
    wait_for(lambda: "/dialer/runs/" in drv.current_url, what="the second run's page")
    run_id = int(drv.current_url.rstrip("/").rsplit("/", 1)[1])
    wait_for(lambda: c.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ? AND state != 'pending'",
                               (run_id,)).fetchone()[0] > 0, timeout=30, what="the first batch")
    drv.get(site.url + f"/dialer/c/{cid}")
    assert f"#{run_id}" in text(drv, "active-run")
    drv.find_element(By.ID, "stop").click()
    confirm(drv)
    wait_for(lambda: drv.find_elements(By.ID, "notice"), what="the stop notice")
    assert text(drv, "notice") == f"Запуск {run_id} останавливается."
    wait_for(lambda: c.execute("SELECT status FROM dialer_runs WHERE id = ?", (run_id,)).fetchone()[0] == "stopped",
             timeout=90, interval=1, what="the run to stop")
    states = dict(c.execute("SELECT number, result FROM dialer_calls WHERE run_id = ?", (run_id,)).fetchall())
    assert None not in states.values() and "withdrawn" in states.values(), states
    outgoing = kit_cfg(site)["asterisk"]["spool_dir"] / "outgoing"
    assert not [p for p in outgoing.iterdir() if p.name.startswith(f"asterisk-kit-{run_id}-")]
    counts = {}
    for n in dialled(site.callee_log):
        counts[n] = counts.get(n, 0) + 1
    assert all(counts.get(n, 0) <= 1 for n in slow), counts
    assert sum(1 for n in slow if n in counts) < len(slow)


def test_injection_through_http_is_refused(site):
    s = requests.Session()
    tok = re.search(r'name="csrf" value="([^"]+)"', s.get(site.url + "/login", timeout=10).text).group(1)
    s.post(site.url + "/login", data={"csrf": tok, "user": "olga", "password": PASSWORD}, timeout=10)
    tok = re.search(r'name="csrf" value="([^"]+)"', s.get(site.url + "/dialer", timeout=10).text).group(1)
    r = s.post(site.url + "/dialer/campaigns", data={"csrf": tok, "name": "Inj\nChannel: x <script>alert(1)</script>"},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303
    cid = int(r.headers["Location"].rsplit("/", 1)[1])
    page = s.get(site.url + f"/dialer/c/{cid}", timeout=10).text
    assert "Inj Channel: x &lt;script&gt;" in page and "<script>alert(1)" not in page
    base = {"csrf": tok, "name": "Inj"}
    for field, value in (("connect_to", "Local/1@x,60"), ("connect_to", "Local/1@x\nApplication: System"),
                         ("connect_to", "Local/${SHELL(id)}@x"), ("sound", "a\nApplication: System"),
                         ("sound", "/etc/passwd"), ("ivr_prompt", "x;y"), ("callerid", '"Evil" <84950000009>'),
                         ("callerid", '"Kit test" <84950000000>\nApplication: System'), ("ivr_digit", "1\nSetvar: x"),
                         ("optout_digit", "#"), ("bundle", "5;x"), ("retry_busy_n", "1;"), ("pause", "-1")):
        r = s.post(site.url + f"/dialer/c/{cid}/settings", data={**base, field: value}, allow_redirects=False,
                   timeout=10)
        assert r.status_code == 303, (field, value)
        shown = s.get(site.url + f"/dialer/c/{cid}", timeout=10).text
        assert f'<li data-field="{field}"><a href="#{field}">' in shown, (field, value)
        assert settings(site, cid) == {}, (field, value)
    for field, value in (("start0", "09:00\nApplication: x"), ("end0", "17:00;"), ("start1", "9")):
        r = s.post(site.url + f"/dialer/c/{cid}/schedule", data={"csrf": tok, "start0": "09:00", field: value},
                   allow_redirects=False, timeout=10)
        assert r.status_code == 303 and f'data-field="{field}"' in s.get(site.url + f"/dialer/c/{cid}").text
    assert db(site).execute("SELECT count(*) FROM dialer_schedule WHERE campaign_id = ?", (cid,)).fetchone()[0] == 0
    assert s.post(site.url + f"/dialer/c/{cid}/state", data={"csrf": tok, "action": "delete"},
                  timeout=10).status_code == 400
    assert s.post(site.url + f"/dialer/c/{cid}/state", data={"action": "archive"}, timeout=10).status_code == 403
    assert state(site, cid) == "active"
    assert s.get(site.url + "/dialer/c/99999", timeout=10).status_code == 404

    # An allowed caller ID and a digit: the run's call files carry exactly those values.
    r = s.post(site.url + f"/dialer/c/{cid}/settings", data={**base, "callerid": SALES, "ivr_digit": "3"},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303 and settings(site, cid)["callerid"] == SALES
    assert "retries" not in settings(site, cid)     # left at the defaults: [dialer] retry_time stays exact
    from asterisk_kit.dialer import campaigns
    from asterisk_kit.dialer.callfile import Renderer
    kcfg = kit_cfg(site)
    pairs = asterisk_reads(Renderer(kcfg).render(7, "89990000071", "3",
                                                 settings=campaigns.resolve(kcfg, settings(site, cid))))
    assert ("CallerID", SALES) in pairs and ("Setvar", "dtmf=3") in pairs
    assert not [k for k, _ in pairs if k in ("Application", "Data")]

    # The old export links answer with campaign 1's files; the campaign's own ones need a login.
    add_numbers(site, cid, ["89990000071"])
    assert s.get(site.url + f"/dialer/c/{cid}/export/todo.json", timeout=10).json() == [
        {"number": "89990000071", "dtmf": "", "comment": ""}]
    r = s.get(site.url + "/dialer/export/schedule.json", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"].endswith("/dialer/c/1/export/schedule.json")
    assert isinstance(s.get(site.url + "/dialer/export/todo.json", timeout=10).json(), list)
    anonymous = requests.get(site.url + f"/dialer/c/{cid}/export/todo.json", allow_redirects=False, timeout=10)
    assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["Location"]


def test_pages_fit_a_phone_and_a_desktop(site, browser):
    """Screenshots of the list and a campaign page in Russian and English at 1280x900 and 390x844 (saved in
    the screenshots folder): no page is wider than the window."""
    drv = browser
    cid = create(drv, site, "Очень длинное название кампании обзвона для проверки переноса строк на телефоне")
    for lang in ("ru", "en"):
        drv.get(site.url + f"/lang/{lang}?next=/dialer")
        assert screenshots_fit(drv, site.url + "/dialer", f"dialer-campaigns-{lang}") == {}
        assert screenshots_fit(drv, site.url + f"/dialer/c/{cid}", f"dialer-campaign-{lang}") == {}
    assert drv.find_element(By.ID, "save-settings").text == "Save settings"
    drv.get(site.url + "/lang/ru?next=/dialer")
