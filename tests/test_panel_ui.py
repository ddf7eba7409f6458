"""The operator panel end to end on the real testbed (testbed/panelbed.py: three baresip phones behind
FreePBX hints, queue `sales`, parking lot `default`): the BLF daemon logged in as the panel's read-only
user (manager/asterisk-kit-panel.conf) runs the call model, memcached carries the change ring, the web
process serves /blf, and headless Chromium shows it. Privacy is checked in the raw bytes an anonymous
wall screen receives (SSE stream, /blf.json, /blf page, /blf/missed.json)."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By

from testbed.blf import Daemon, ami_connections, blf_config, cached
from testbed.browser import login, new_browser, quit_browser, wait_for
from testbed.kitcli import BIN
from testbed.memcached import Memcached
from testbed.panelbed import PanelBed, reader_block
from testbed.webserver import WebServer

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]
PASSWORD = "panel ui pass 1"
SECRET = "panel-ui-reader-secret"
READER = "asterisk-kit-panel"
# outside numbers: a viewer without "see numbers" must never receive any of them
OUTSIDE = ["79161234567", "79035551122", "79990001122", "79160000001", "79160000002"]
SHOTS = Path(os.environ.get("ASTERISK_KIT_SCREENSHOTS") or "/tmp/asterisk-kit-screenshots")


class RawStream:
    """An anonymous /blf/events stream, every byte kept."""

    def __init__(self, url: str):
        import threading
        self.data = b""
        self.resp = requests.get(url + "/blf/events", stream=True, timeout=60, headers={"Accept": "text/event-stream"})
        assert self.resp.status_code == 200
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            while True:
                chunk = self.resp.raw.read1(1 << 16)
                if not chunk:
                    return
                self.data += chunk
        except Exception:  # noqa: BLE001 - closed by the test
            return

    def close(self) -> None:
        self.resp.close()


@pytest.fixture(scope="module")
def panel(tmp_path_factory, mariadb):
    if not PanelBed.available():
        pytest.skip("baresip is not installed (scripts/install-system-deps.sh installs it)")
    d = tmp_path_factory.mktemp("panelui")
    bed = PanelBed(d / "bed").start(extra_manager=reader_block(SECRET))
    mc = Memcached().start()
    cfg = blf_config(d / "kit", bed.asterisk, mc.server, SECRET,
                     blf=f"ami_user = {READER}\nami_secret = {SECRET}\nanonymous_networks = 127.0.0.1/32\n"
                         "names = 101: Olga; 102: Anna; 103: Boris\n",
                     extra=mariadb.mysql_section())
    subprocess.run([str(BIN), "--config", str(cfg), "user", "add", "olga", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    mariadb.execute("DELETE FROM cdr", database=mariadb.cdr_database)
    now = dt.datetime.now().replace(microsecond=0)
    mariadb.executemany(
        "INSERT INTO cdr (calldate, clid, src, dst, lastapp, lastdata, dstchannel, disposition, linkedid, uniqueid) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [(now, '"Missed One" <79160000001>', "79160000001", "101", "Dial", "PJSIP/101", "PJSIP/101-1", "NO ANSWER",
          "m1", "m1"),
         (now, '"Gone Waiting" <79160000002>', "79160000002", "500", "Queue", "sales,t", "", "ANSWERED", "m2", "m2"),
         (now - dt.timedelta(days=1), '"Yesterday" <79160000003>', "79160000003", "101", "Dial", "PJSIP/101", "",
          "NO ANSWER", "m3", "m3")], database=mariadb.cdr_database)
    daemon = Daemon(cfg).start()
    srv = WebServer(cfg).start()
    client = mc.client()
    # a wall screen is in the foreground: no timer throttling of a window headless Chromium thinks hidden
    drv = new_browser(extra_args=("--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                                  "--disable-backgrounding-occluded-windows"))
    try:
        wait_for(lambda: (cached(client, "blf:meta") or {}).get("ami") == "up", 30, what="the daemon's snapshot")
        srv.bed, srv.cfg, srv.client, srv.drv, srv.mc = bed, cfg, client, drv, mc
        srv.daemon = daemon
        srv.anon = RawStream(srv.url)
        login(drv, srv.url, "olga", PASSWORD)       # logged in: sees numbers (anonymous would not)
        drv.get(srv.url + "/blf")
        wait_for(lambda: drv.find_elements(By.ID, "ext-101"), what="the panel")
        yield srv
    finally:
        quit_browser(drv)
        srv.stop()
        rc = srv.daemon.stop()
        mc.stop()
        bed.stop()
        assert rc == 0, srv.daemon.output()[-3000:]


def text(p, css: str) -> str:
    """The rendered text of an element, read in one step (the page re-renders parts on every change, so
    an element found first and read later can be gone)."""
    return p.drv.execute_script("var e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css)


def call_line(p, exten: str) -> str:
    return text(p, f"#ext-{exten} .call")


def since(p, exten: str) -> str:
    return text(p, f"#ext-{exten} .since")


def seconds(text: str) -> int:
    parts = [int(x) for x in text.replace("≥", "").strip().split(":")]
    return sum(v * 60 ** i for i, v in enumerate(reversed(parts)))


def test_1_caller_id_ringing_then_connected_line_duration_and_transfer(panel):
    p, bed = panel, panel.bed
    bed.caller("101", "79161234567", "Иван Клиент")
    wait_for(lambda: "Иван Клиент" in call_line(p, "101") and "79161234567" in call_line(p, "101"), 20,
             what="caller ID on the ringing key")
    assert p.drv.find_element(By.ID, "ext-101").get_attribute("data-state") == "ringing"
    assert call_line(p, "101").startswith("←"), "an incoming call"
    time.sleep(1.5)
    bed.phones["101"].command("/accept")
    wait_for(lambda: p.drv.find_element(By.ID, "ext-101").get_attribute("data-state") == "inuse", 20, what="answered")
    assert "Иван Клиент" in call_line(p, "101")
    # the talk time counts from the answer (not the ring) and ticks in the browser
    t101 = p.drv.find_element(By.ID, "ext-101")
    ds1, first = t101.get_attribute("data-since"), seconds(since(p, "101"))
    assert first <= 2, since(p, "101")
    time.sleep(3.5)       # the display ticks once a second, so it may lag the clock by up to 1 s
    ds2, later = t101.get_attribute("data-since"), seconds(since(p, "101"))
    diag = (ds1, ds2, first, later, time.time(), p.drv.execute_script("return Date.now() / 1000"),
            p.drv.find_element(By.ID, "blf").get_attribute("data-offset"))
    assert first + 2 <= later <= first + 5, repr(diag)
    # a logged-in viewer gets the number in JSON, an anonymous wall screen does not
    s = requests.Session()
    anon = requests.get(p.url + "/blf.json", headers={"Accept": "application/json"}, timeout=10)
    assert anon.status_code == 200 and "79161234567" not in anon.text and "Иван Клиент" in anon.text
    bed.admin("BlindTransfer", Channel=bed.channel_of("PJSIP/101"), Exten="102", Context="from-internal")
    wait_for(lambda: "Иван Клиент" in call_line(p, "102"), 20, what="the transferred caller on 102")
    bed.phones["102"].command("/accept")
    wait_for(lambda: p.drv.find_element(By.ID, "ext-102").get_attribute("data-state") == "inuse", 20,
             what="102 answered")
    wait_for(lambda: call_line(p, "101") == "", 10, what="101 free after the transfer")
    assert "79161234567" in call_line(p, "102")
    s.close()


def test_2_daemon_restart_mid_call_page_right_without_reload(panel):
    p = panel
    marker = p.drv.execute_script("window.__noReload = 42; return window.__noReload;")
    assert marker == 42
    p.daemon.stop()
    wait_for(lambda: "stale" in p.drv.find_element(By.ID, "blf-status").get_attribute("class"), 15, what="stale bar")
    p.daemon = Daemon(p.cfg).start()
    wait_for(lambda: "stale" not in p.drv.find_element(By.ID, "blf-status").get_attribute("class"), 30,
             what="live again")
    wait_for(lambda: "Иван Клиент" in call_line(p, "102") and "79161234567" in call_line(p, "102"), 20,
             what="the caller on 102 after the daemon restart")
    # the answer time is only known as a lower bound now
    wait_for(lambda: since(p, "102").startswith("≥"), 10, what="≥ on the talk time")
    assert p.drv.execute_script("return window.__noReload;") == 42, "the page was reloaded"
    p.bed.cli("channel request hangup all")
    wait_for(lambda: call_line(p, "102") == "", 20, what="hung up")


def test_3_asterisk_restart_mid_call(panel):
    p, bed = panel, panel.bed
    bed.phones["103"].command("/dial 101")
    wait_for(lambda: "103" in call_line(p, "101"), 20, what="103 calling 101")
    bed.phones["101"].command("/accept")
    wait_for(lambda: p.drv.find_element(By.ID, "ext-101").get_attribute("data-state") == "inuse", 20, what="talking")
    assert call_line(p, "103").startswith("→") and call_line(p, "101").startswith("←")
    bed.asterisk.stop()
    wait_for(lambda: "stale" in p.drv.find_element(By.ID, "blf-status").get_attribute("class"), 15, what="stale bar")
    bed.asterisk.start()
    wait_for(lambda: "stale" not in p.drv.find_element(By.ID, "blf-status").get_attribute("class"), 60,
             what="live after the Asterisk restart")
    # the calls died with Asterisk: the snapshot after the reconnect says so without a reload
    wait_for(lambda: call_line(p, "101") == "" and call_line(p, "103") == "", 20, what="no stale calls")
    bed._wait_registered(30)
    for u in bed.phone_ids:
        bed.cli(f"devstate change Custom:DND{u} NOT_INUSE")


def test_4_dnd_is_shown_as_dnd(panel):
    p = panel
    p.bed.cli("devstate change Custom:DND101 BUSY")
    t = p.drv.find_element(By.ID, "ext-101")
    wait_for(lambda: t.get_attribute("data-dnd") == "1", 15, what="DND on 101")
    assert t.get_attribute("data-calls") == "0"
    assert "не беспокоить" in t.find_element(By.CLASS_NAME, "state").text
    assert call_line(p, "101") == ""


def test_5_queue_waiting_caller_members_and_parked_call(panel):
    p, bed = panel, panel.bed
    bed.admin("QueuePause", Queue="sales", Interface="PJSIP/103", Paused="true", Reason="break")
    bed.caller("500", "79035551122", "Пётр Очередь")
    q = lambda: text(p, "#queue-sales")  # noqa: E731
    wait_for(lambda: "Пётр Очередь" in q() and "79035551122" in q(), 20, what="the waiting caller")
    assert "Boris" in q() and "пауза" in q() and "Anna" in q()
    anon = requests.get(p.url + "/blf.json", headers={"Accept": "application/json"}, timeout=10).json()
    (sales,) = [x for x in anon["queues"] if x["queue"] == "sales"]
    assert sales["waiting"][0]["name"] == "Пётр Очередь" and sales["waiting"][0]["number"] is None
    shoot(p, "queue")
    bed.cli("channel request hangup all")
    wait_for(lambda: "Пётр Очередь" not in q(), 20, what="the caller left")
    wait_for(lambda: "Потеряно сегодня: 1" in q(), 10, what="one abandoned today")
    bed.caller("700", "79990001122", "Parked Guest")
    box = lambda: text(p, "#blf-parked")  # noqa: E731
    wait_for(lambda: "Parked Guest" in box() and "701" in box(), 20, what="the parked call")
    shoot(p, "parked")


def test_6_missed_calls_today_from_cdr(panel):
    p = panel
    p.drv.execute_script("document.querySelector('#blf-missed').textContent = '';")
    p.drv.refresh()
    box = lambda: text(p, "#blf-missed")  # noqa: E731
    wait_for(lambda: "Missed One" in box() and "79160000001" in box() and "queue sales" in box(), 15,
             what="missed calls")
    assert "Yesterday" not in box()
    # no call-back buttons while the dial permission is not given (perms.dial_allowed)
    assert not p.drv.find_elements(By.CSS_SELECTOR, ".call-back")
    # with the global flag set, a button per missed call calls the actions hook with the number
    p.drv.execute_script("window.akPanelDialAllowed = true; window.__dialed = [];"
                         "window.akPanelAction = function (what, n) { window.__dialed.push([what, n]); };"
                         "window.akPanelRefreshMissed();")
    wait_for(lambda: p.drv.find_elements(By.CSS_SELECTOR, ".call-back[data-number='79160000001']"), 10,
             what="call-back button")
    p.drv.find_element(By.CSS_SELECTOR, ".call-back[data-number='79160000001']").click()
    assert p.drv.execute_script("return window.__dialed;") == [["dial", "79160000001"]]
    anon = requests.get(p.url + "/blf/missed.json", headers={"Accept": "application/json"}, timeout=10)
    assert "Missed One" in anon.text and "79160000001" not in anon.text and "79160000002" not in anon.text


def test_7_privacy_in_raw_bytes_of_anonymous_viewer(panel):
    p = panel
    raw = p.anon.data
    assert b"event: snapshot" in raw and "Иван Клиент".encode() in raw, "the stream saw the calls"
    page = requests.get(p.url + "/blf", timeout=10).text
    js = requests.get(p.url + "/blf.json", headers={"Accept": "application/json"}, timeout=10).text
    for n in OUTSIDE:
        assert n.encode() not in raw, n
        assert n not in page and n not in js, n
    # the logged-in viewer's JSON does carry numbers (the parked caller's)
    cookies = {c["name"]: c["value"] for c in p.drv.get_cookies()}
    full = requests.get(p.url + "/blf.json", headers={"Accept": "application/json"}, cookies=cookies, timeout=10).text
    assert "79990001122" in full


def test_8_one_ami_reader_for_many_viewers(panel):
    p = panel
    streams = [RawStream(p.url) for _ in range(20)]
    try:
        time.sleep(1)
        assert ami_connections(p.bed.asterisk, READER) == 1
    finally:
        for s in streams:
            s.close()


def shoot(p, what: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    p.drv.save_screenshot(str(SHOTS / f"panel-{what}.png"))


def test_9_screenshots_and_phone_width(panel):
    p = panel
    # a wall screen shows 100+ keys: 120 more hints (Custom: devices), picked up after the dialplan reload
    from testbed.blf import hints
    p.bed.asterisk.add_test_dialplan("panelmany", hints("ext-local", [str(x) for x in range(200, 320)]))
    wait_for(lambda: len(requests.get(p.url + "/blf.json", headers={"Accept": "application/json"},
                                      timeout=10).json()["extensions"]) == 123, 30, what="123 keys")
    for path, name in (("/blf", "panel"), ("/blf/wall", "kiosk")):
        for w, h in ((1920, 1080), (1280, 900), (390, 844)):
            p.drv.set_window_size(w, h)
            p.drv.get(p.url + path)
            wait_for(lambda: p.drv.find_elements(By.ID, "ext-101"), what="the panel")
            time.sleep(0.5)
            inner = p.drv.execute_script("return window.innerWidth")
            inner_h = p.drv.execute_script("return window.innerHeight")
            p.drv.set_window_size(w + (w - inner), h + (h - inner_h))   # the viewport, not the window, is w x h
            time.sleep(0.3)
            p.drv.save_screenshot(str(SHOTS / f"{name}-{w}x{h}.png"))
            if w == 390:
                width = p.drv.execute_script("return document.documentElement.scrollWidth")
                vw = p.drv.execute_script("return window.innerWidth")
                assert width <= vw, f"{path} at {vw} px: document {width} px wide"
            if name == "kiosk" and w == 1920:
                height = p.drv.execute_script("return document.documentElement.scrollHeight")
                vh = p.drv.execute_script("return window.innerHeight")
                assert height <= vh, f"kiosk: 123 keys need {height} px, the screen has {vh}"
            if name == "kiosk":
                assert not p.drv.find_elements(By.CSS_SELECTOR, "header.top, #blf-search, #blf-state")
                assert "обычной панели" in p.drv.find_element(By.ID, "blf-kiosk-exit").text
                assert "≥" in p.drv.find_element(By.ID, "blf-legend").text
    # English
    p.drv.get(p.url + "/lang/en?next=/blf/wall")
    wait_for(lambda: "back to the normal panel" in p.drv.find_element(By.ID, "blf-kiosk-exit").text, what="English")
    assert "not exact" in p.drv.find_element(By.ID, "blf-legend").text
    p.drv.save_screenshot(str(SHOTS / "kiosk-en-390x844.png"))
    p.drv.get(p.url + "/lang/ru?next=/blf")
    p.drv.set_window_size(1280, 900)
