"""BLF panel against the real Asterisk testbed, a real memcached and headless Chromium: states reach
memcached and an open page without reload, one AMI connection whatever the viewers, Asterisk and
memcached restarts under a running daemon, SIGHUP, the init.d script, the JSON and access rules."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest
import requests
from selenium.webdriver.common.by import By

from asterisk_kit.blf.states import STATES, Selection, compile_patterns, from_status, parse_groups, parse_names
from testbed.asterisk import Asterisk, free_port
from testbed.blf import Daemon, add_blf_ami_user, ami_connections, blf_config, cached, hints, wait_state
from testbed.browser import login, wait_for
from testbed.kitcli import BIN, kit
from testbed.memcached import Memcached
from testbed.webserver import WebServer

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]
PASSWORD = "blf panel pass 1"
EXTENS = ["201", "202", "203", "204", "205"]


# ---- pure logic ---------------------------------------------------------------------------------

def test_every_extension_status_value_is_known():
    texts = {code: text for code, (_, text) in STATES.items()}
    assert texts == {-2: "Removed", -1: "Deactivated", 0: "Idle", 1: "InUse", 2: "Busy", 4: "Unavailable",
                     8: "Ringing", 9: "InUse&Ringing", 16: "Hold", 17: "InUse&Hold"}
    assert from_status("17") == ("inuse_hold", 17) and from_status("-2") == ("removed", -2)
    assert from_status("32")[0] == "unknown" and from_status("x")[0] == "unknown"


def test_selection_patterns_groups_names():
    sel = Selection(["ext-local"], compile_patterns(["100-299", "_9XX"]), compile_patterns(["250"]))
    assert sel.wants("201", "ext-local") and sel.wants("950", "ext-local")
    assert not sel.wants("250", "ext-local") and not sel.wants("201", "ext-dnd-hints")
    assert not sel.wants("3001", "ext-local") and not sel.wants("2 01", "ext-local")
    assert parse_groups("Приёмная: 100-109, 120; Sales: _2XX") == \
        [("Приёмная", ["100-109", "120"]), ("Sales", ["_2XX"])]
    assert parse_names("101: Ольга Петрова; 102: Ivan") == {"101": "Ольга Петрова", "102": "Ivan"}


def test_bad_blf_config_names_the_key(tmp_path):
    cfg = tmp_path / "kit.ini"
    cfg.write_text("[asterisk]\nami_user = x\nami_secret = y\n[blf]\ninclude = 10-2\ngroups = Sales 101\n")
    r = kit(cfg, "blf", "run")
    assert r.returncode == 2
    assert f"{cfg}: [blf] include: expected extensions, ranges" in r.stderr
    assert f"{cfg}: [blf] groups: expected groups" in r.stderr


# ---- the shared site: session Asterisk, own memcached, daemon, web -----------------------------------

@pytest.fixture(scope="module")
def mc():
    m = Memcached().start()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory, asterisk, mc):
    d = tmp_path_factory.mktemp("blf")
    secret = add_blf_ami_user(asterisk)
    asterisk.add_test_dialplan("blf", hints("ext-local", EXTENS, presence=True) + hints("blf-other", ["299"]))
    for x in EXTENS:
        asterisk.cli(f"devstate change Custom:{x} NOT_INUSE")
    cfg = blf_config(d, asterisk, mc.server, secret,
                     blf="names = 201: Ольга Петрова; 202: Ivan\ngroups = Reception: 201-202; Sales: 203-204\n")
    subprocess.run([str(BIN), "--config", str(cfg), "user", "add", "olga", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    daemon = Daemon(cfg).start()
    srv = WebServer(cfg).start()
    srv.cfg, srv.daemon, srv.asterisk, srv.client = cfg, daemon, asterisk, mc.client()
    try:
        wait_for(lambda: cached(srv.client, "blf:meta") and cached(srv.client, "blf:meta")["ami"] == "up", 30,
                 what="the daemon's first snapshot")
        yield srv
    finally:
        srv.stop()
        rc = daemon.stop()
        assert rc == 0, daemon.output()[-3000:]


def session(site):
    import re
    s = requests.Session()
    page = s.get(site.url + "/login", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(site.url + "/login", data={"csrf": csrf, "user": "olga", "password": PASSWORD, "next": "/"},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303
    return s


def open_blf(drv, site):
    """The /blf page in the browser, logging in first when needed."""
    drv.get(site.url + "/blf")
    if "/login" in drv.current_url:
        login(drv, site.url, "olga", PASSWORD)
        drv.get(site.url + "/blf")
    wait_for(lambda: drv.find_elements(By.ID, "blf"), what="the BLF page")


def tile(drv, exten):
    return drv.find_element(By.ID, f"ext-{exten}")


def test_state_changes_reach_memcached_and_the_open_page(site, browser):
    a, mcc = site.asterisk, site.client
    open_blf(browser, site)
    wait_for(lambda: tile(browser, "201").find_element(By.CLASS_NAME, "name").text == "Ольга Петрова",
             what="the name from the config")
    wait_for(lambda: browser.find_element(By.ID, "blf-status").get_attribute("data-stale") == "", what="live page")
    browser.execute_script("window.__noReload = 42;")
    words = {"INUSE": ("inuse", "разговаривает"), "BUSY": ("busy", "занят"),
             "UNAVAILABLE": ("unavailable", "недоступен"), "RINGING": ("ringing", "звонит"),
             "RINGINUSE": ("inuse_ringing", "разговор + звонок"), "ONHOLD": ("hold", "на удержании"),
             "NOT_INUSE": ("idle", "свободен")}
    for devstate, (slug, word) in words.items():
        a.cli(f"devstate change Custom:201 {devstate}")
        wait_state(mcc, "201", slug)
        wait_for(lambda slug=slug: tile(browser, "201").get_attribute("data-state") == slug, 10,
                 what=f"tile 201 {slug}")
        assert tile(browser, "201").find_element(By.CLASS_NAME, "state").text == word
    assert browser.execute_script("return window.__noReload;") == 42, "the page was reloaded"
    rec = cached(mcc, "blf:ext:201")
    assert rec["text"] == "Idle" and rec["code"] == 0 and rec["since_known"] is True
    assert rec["group"] == "Reception" and rec["name"] == "Ольга Петрова"
    # the time in state counts up in the page
    wait_for(lambda: re.fullmatch(r"0:(0[1-9]|[1-5][0-9])",
                                  tile(browser, "201").find_element(By.CLASS_NAME, "since").text),
             10, what="time in state counting from the change")


def test_blf_only_user_parking_unavailable_everything_else_works(site, browser):
    """The daemon runs the call model with the BLF-only AMI user (write = reporting): ParkedCalls is
    refused, which is logged once and shown as "parking unavailable"; states keep working."""
    mcc = site.client
    s = session(site)
    wait_for(lambda: s.get(site.url + "/blf.json", headers={"Accept": "application/json"}, timeout=10).json()
             .get("parking") is False, 15, what="parking: false")
    out = site.daemon.output()
    assert out.count("AMI ParkedCalls refused") == 1, out[-3000:]
    assert "parked calls shown as unavailable" in out
    open_blf(browser, site)
    wait_for(lambda: "Парковка недоступна" in browser.find_element(By.ID, "blf-parked").text, what="unavailable")
    site.asterisk.cli("devstate change Custom:205 INUSE")
    wait_state(mcc, "205", "inuse")
    wait_for(lambda: tile(browser, "205").get_attribute("data-state") == "inuse", what="state on the page")
    site.asterisk.cli("devstate change Custom:205 NOT_INUSE")
    wait_state(mcc, "205", "idle")


def test_filter_groups_search_and_json(site, browser):
    s = session(site)
    data = s.get(site.url + "/blf.json", headers={"Accept": "application/json"}, timeout=10).json()
    shown = [e["exten"] for e in data["extensions"]]
    assert shown == EXTENS, "299 is in another context and must not be shown"
    assert data["groups"] == ["Reception", "Sales"] and data["stale"] == ""
    assert {e["exten"]: e["name"] for e in data["extensions"]}["202"] == "Ivan"
    assert requests.get(site.url + "/blf.json", headers={"Accept": "application/json"}, timeout=10).status_code == 401
    r = requests.get(site.url + "/blf", allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303) and "/login" in r.headers["Location"]
    # the page: groups, search, state filter
    open_blf(browser, site)
    wait_for(lambda: [g.get_attribute("data-group") for g in browser.find_elements(By.CSS_SELECTOR, ".blf-group")]
             == ["Reception", "Sales", "Остальные"], what="the groups in order")
    browser.find_element(By.ID, "blf-search").send_keys("ольга")

    def visible():
        return [t.get_attribute("data-exten") for t in browser.find_elements(By.CSS_SELECTOR, ".tile")
                if t.is_displayed()]
    wait_for(lambda: visible() == ["201"], what="search by name")
    browser.find_element(By.ID, "blf-search").clear()
    site.asterisk.cli("devstate change Custom:204 INUSE")
    wait_for(lambda: tile(browser, "204").get_attribute("data-state") == "inuse", what="204 in use")
    browser.find_element(By.CSS_SELECTOR, "#blf-state option[value=busy]").click()
    wait_for(lambda: visible() == ["204"], what="state filter busy")
    site.asterisk.cli("devstate change Custom:204 NOT_INUSE")
    # English, a phone-sized screen (no sideways scrolling, two tiles a row at least), the wall mode
    browser.get(site.url + "/lang/en?next=/blf")
    wait_for(lambda: tile(browser, "201").find_element(By.CLASS_NAME, "state").text == "free"
             and browser.find_element(By.ID, "blf-status").text == "Live", what="the English page")
    try:
        browser.set_window_size(390, 844)
        wait_for(lambda: browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"), what="no horizontal scroll")
        tops = browser.execute_script("return [201, 202].map(function (x) {"
                                      " return document.getElementById('ext-' + x).getBoundingClientRect().top; });")
        assert tops[0] == tops[1], "two tiles side by side on a phone"
    finally:
        browser.set_window_size(1280, 900)
    browser.get(site.url + "/blf?wall=1")
    font_size = "return parseFloat(getComputedStyle(document.querySelector('#ext-201 .num')).fontSize);"
    big = browser.execute_script(font_size)
    browser.get(site.url + "/lang/ru?next=/blf")
    normal = browser.execute_script(font_size)
    assert big > 1.5 * normal, (big, normal)
    # the CLI and the doctor read the same cache
    r = kit(site.cfg, "blf", "show")
    assert r.returncode == 0 and "live" in r.stdout and "Ольга Петрова" in r.stdout
    r = kit(site.cfg, "doctor")
    assert "ok      blf daemon: running, AMI up, 5 extensions" in r.stdout, r.stdout
    assert "ok      ami: logged in as asterisk-kit-blf" in r.stdout, "the least-privilege user passes the doctor"


def test_presence_is_shown(site, browser):
    a, mcc = site.asterisk, site.client
    open_blf(browser, site)
    a.cli('presencestate change CustomPresence:203 DND,,"Совещание до 15:00"')
    wait_for(lambda: (cached(mcc, "blf:ext:203") or {}).get("presence") == "dnd", 15, what="presence in memcached")
    assert cached(mcc, "blf:ext:203")["presence_message"] == "Совещание до 15:00"
    wait_for(lambda: tile(browser, "203").find_element(By.CLASS_NAME, "state").text == "свободен · не беспокоить",
             what="presence on the page")
    assert tile(browser, "203").get_attribute("title") == "Совещание до 15:00"
    a.cli("presencestate change CustomPresence:203 AVAILABLE")
    wait_for(lambda: (cached(mcc, "blf:ext:203") or {}).get("presence") == "", 15, what="presence cleared")
    wait_for(lambda: tile(browser, "203").find_element(By.CLASS_NAME, "state").text == "свободен",
             what="presence cleared on the page")


def test_reload_adds_and_removes_hints(site, browser):
    a, mcc = site.asterisk, site.client
    open_blf(browser, site)
    a.add_test_dialplan("blf", hints("ext-local", EXTENS[:-1] + ["206"], presence=True) + hints("blf-other", ["299"]))
    wait_for(lambda: cached(mcc, "blf:ext:206") is not None and cached(mcc, "blf:ext:205") is None, 20,
             what="206 added and 205 removed after dialplan reload")
    wait_for(lambda: browser.find_elements(By.ID, "ext-206") and not browser.find_elements(By.ID, "ext-205"), 10,
             what="the page follows the reload")
    a.add_test_dialplan("blf", hints("ext-local", EXTENS, presence=True) + hints("blf-other", ["299"]))
    wait_for(lambda: cached(mcc, "blf:ext:205") is not None and cached(mcc, "blf:ext:206") is None, 20,
             what="back to the original hints")


def test_many_viewers_one_ami_connection(site, browser):
    s = session(site)
    cookies = s.cookies.get_dict()
    got = {}
    stop = threading.Event()

    def viewer(i):
        with requests.get(site.url + "/blf/events", cookies=cookies, stream=True, timeout=30,
                          headers={"Accept": "text/event-stream"}) as r:
            assert r.status_code == 200
            for line in r.iter_lines(chunk_size=1, decode_unicode=True):  # no 512-byte buffering
                if line.startswith("data:") and '"exten":"203","context":"ext-local"' in line \
                        and '"state":"busy"' in line:
                    got[i] = time.monotonic()
                if stop.is_set() or i in got:
                    return

    threads = [threading.Thread(target=viewer, args=(i,), daemon=True) for i in range(40)]
    for t in threads:
        t.start()
    open_blf(browser, site)
    time.sleep(0)  # yield: the viewers connect while we look at AMI below
    wait_for(lambda: ami_connections(site.asterisk) == 1, 10, what="the daemon's AMI connection")
    site.asterisk.cli("devstate change Custom:203 BUSY")
    wait_for(lambda: len(got) == 40, 30, what=f"all 40 SSE viewers got the change (got {len(got)})")
    wait_for(lambda: tile(browser, "203").get_attribute("data-state") == "busy", what="the page too")
    assert ami_connections(site.asterisk) == 1, site.asterisk.cli("manager show connected")
    stop.set()
    site.asterisk.cli("devstate change Custom:203 NOT_INUSE")


def test_memcached_restart_states_come_back(site, mc, browser):
    a = site.asterisk
    a.cli("devstate change Custom:202 RINGING")
    wait_state(site.client, "202", "ringing")
    open_blf(browser, site)
    mc.restart()                 # a new, empty memcached process on the same port
    site.client = mcc = mc.client()
    wait_state(mcc, "202", "ringing", timeout=20)
    wait_for(lambda: cached(mcc, "blf:snapshot") and cached(mcc, "blf:ext:205"), 10, what="everything rewritten")
    a.cli("devstate change Custom:202 NOT_INUSE")
    wait_state(mcc, "202", "idle")
    wait_for(lambda: tile(browser, "202").get_attribute("data-state") == "idle", 15, what="the page is live again")
    wait_for(lambda: browser.find_element(By.ID, "blf-status").get_attribute("data-stale") == "", 15,
             what="not stale")
    out = site.daemon.output()
    assert "memcached write failed" in out or "memcached lost" in out, "the daemon noticed the restart"


def test_two_memcached_servers_one_restarted(tmp_path, asterisk, mc):
    """[memcached] servers lists two: keys are spread over both; one of them restarts empty, the
    daemon notices the missing keys and rewrites them; readers (blf show) see every state again.
    This daemon runs state-only ([blf] calls = no): no call-model fields, no snapshot lists of it."""
    secret = add_blf_ami_user(asterisk)
    asterisk.add_test_dialplan("blf", hints("ext-local", EXTENS, presence=True) + hints("blf-other", ["299"]))
    # 40 more hints in a context of this test's own: with only five keys, the hashing over the two
    # servers' (random) ports puts them all on one server now and then; with 45 practically never.
    many = [f"7{i:02d}" for i in range(40)]
    asterisk.add_test_dialplan("blf_two", hints("blf-two", many))
    other = Memcached().start()
    try:
        cfg = blf_config(tmp_path, asterisk, f"{mc.server}, {other.server}", secret,
                         blf="contexts = ext-local, blf-two\ncalls = no")
        cfg.write_text(cfg.read_text().replace("[memcached]\n", "[memcached]\nprefix = two-test\n"))
        daemon = Daemon(cfg).start()
        try:
            keys = [f"two-test:blf:ext:{x}" for x in EXTENS + many]

            def held(m):
                return [k for k in keys if m.client().get(k) is not None]
            wait_for(lambda: len(held(mc)) + len(held(other)) == len(keys), 30, what="every record written")
            assert held(mc) and held(other), "the records are spread over both servers"
            asterisk.cli("devstate change Custom:201 INUSE")
            wait_for(lambda: '"state":"inuse"' in (mc.client().get("two-test:blf:ext:201")
                                                   or other.client().get("two-test:blf:ext:201") or b"").decode(),
                     15, what="201 in use")
            pid = other.proc.pid
            other.restart()
            # A new memcached process starts empty; no check that it is empty here, because the
            # daemon may already have refilled it (it verifies its keys every 3 heartbeats).
            assert other.proc.pid != pid
            wait_for(lambda: len(held(mc)) + len(held(other)) >= len(keys) and held(other), 30,
                     what="the restarted server's keys rewritten")
            r = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(kit(cfg, "blf", "show")), 20,
                         what="blf show live again")
            assert "201  inuse" in r.stdout and all(x in r.stdout for x in EXTENS), r.stdout
            rec = json.loads(mc.client().get("two-test:blf:ext:201") or other.client().get("two-test:blf:ext:201"))
            assert "calls" not in rec and "dnd" not in rec, rec
            assert "panel snapshot" not in daemon.output() and "ParkedCalls" not in daemon.output()
        finally:
            asterisk.cli("devstate change Custom:201 NOT_INUSE")
            assert daemon.stop() == 0
        assert "memcached lost" in daemon.output() or "memcached is back" in daemon.output()
    finally:
        other.stop()


def test_sighup_reloads_names(site):
    text = site.cfg.read_text()
    site.cfg.write_text(text.replace("202: Ivan", "202: Иван Сидоров"))
    site.daemon.hup()
    wait_for(lambda: (cached(site.client, "blf:ext:202") or {}).get("name") == "Иван Сидоров", 15,
             what="the new name after SIGHUP")
    site.cfg.write_text(text.replace("[blf]\n", "[blf]\ninclude = 10-2\n"))     # a broken config is refused
    site.daemon.hup()
    wait_for(lambda: "config not reloaded" in site.daemon.output(), 10, what="the refusal logged")
    assert site.daemon.proc.poll() is None
    site.cfg.write_text(text)
    site.daemon.hup()
    wait_for(lambda: (cached(site.client, "blf:ext:202") or {}).get("name") == "Ivan", 15, what="names back")


def test_anonymous_viewing_from_listed_networks(site, tmp_path):
    cfg = tmp_path / "anon.ini"
    cfg.write_text(site.cfg.read_text()
                   .replace("[blf]\n", "[blf]\nanonymous_networks = 127.0.0.1/32\nmax_viewers = 2\n")
                   .replace(str(site.cfg.parent / "data"), str(tmp_path / "data")))
    srv = WebServer(cfg).start()
    try:
        r = requests.get(srv.url + "/blf.json", headers={"Accept": "application/json"}, timeout=10)
        assert r.status_code == 200 and [e["exten"] for e in r.json()["extensions"]] == EXTENS
        assert requests.get(srv.url + "/blf", timeout=10).status_code == 200
        r = requests.get(srv.url + "/", allow_redirects=False, timeout=10)
        assert r.status_code in (302, 303), "only the BLF views are open, not the rest of the site"
        # [blf] max_viewers = 2: a third live stream is refused (and told when to retry), not queued
        streams = [requests.get(srv.url + "/blf/events", stream=True, timeout=10) for _ in range(2)]
        try:
            assert all(s.status_code == 200 for s in streams)
            third = requests.get(srv.url + "/blf/events", stream=True, timeout=10)
            assert third.status_code == 503 and third.headers["Retry-After"] == "10"
        finally:
            for s in streams:
                s.close()
        wait_for(lambda: requests.get(srv.url + "/blf/events", stream=True, timeout=10).status_code == 200, 40,
                 interval=1, what="a slot free again once a viewer left")
    finally:
        srv.stop()


# ---- a private Asterisk stopped and restarted under the daemon -----------------------------------------

def test_asterisk_restart_shows_stale_then_correct_states(tmp_path, mc, browser):
    a = Asterisk(tmp_path / "ast").setup()
    secret = add_blf_ami_user(a)
    a.add_test_dialplan("blf", hints("ext-local", ["301", "302"]), reload=False)
    a.start()
    cfg = blf_config(tmp_path / "kit", a, mc.server, secret, extra="[memcached]\n".replace("[memcached]\n", "")
                     ).resolve()
    cfg.write_text(cfg.read_text().replace("[memcached]\n", "[memcached]\nprefix = restart-test\n")
                   .replace("[blf]\n", "[blf]\nanonymous_networks = 127.0.0.1/32\n"))
    mcc = mc.client()

    def rec(x):
        raw = mcc.get(f"restart-test:blf:ext:{x}")
        return json.loads(raw) if raw else {}

    def meta():
        raw = mcc.get("restart-test:blf:meta")
        return json.loads(raw) if raw else {}

    daemon = Daemon(cfg).start()
    srv = WebServer(cfg).start()
    try:
        a.cli("devstate change Custom:301 INUSE")
        wait_for(lambda: rec("301").get("state") == "inuse", 30, what="301 in use")
        browser.get(srv.url + "/blf")
        wait_for(lambda: tile(browser, "301").get_attribute("data-state") == "inuse", what="page shows 301 in use")
        pid = daemon.proc.pid
        a.stop()
        wait_for(lambda: meta().get("ami") == "down" and rec("301").get("state") == "unknown", 10,
                 what="states unknown within a few seconds of Asterisk stopping")
        wait_for(lambda: browser.find_element(By.ID, "blf-status").get_attribute("data-stale") == "ami", 10,
                 what="the page says stale")
        assert "Нет связи с Asterisk" in browser.find_element(By.ID, "blf-status").text
        assert tile(browser, "301").get_attribute("data-state") == "unknown"
        a.start()
        a.cli("devstate change Custom:302 BUSY")
        wait_for(lambda: meta().get("ami") == "up" and rec("302").get("state") == "busy", 30,
                 what="resync after the restart")
        # Custom device states survive an Asterisk restart (astdb): 301 is in use again
        assert rec("301").get("state") == "inuse"
        wait_for(lambda: tile(browser, "302").get_attribute("data-state") == "busy"
                 and browser.find_element(By.ID, "blf-status").get_attribute("data-stale") == "", 15,
                 what="the page correct and live again")
        assert daemon.proc.pid == pid and daemon.proc.poll() is None, "no daemon restart"
        assert ami_connections(a) == 1
        out = daemon.output()
        assert "states marked unknown" in out and out.count("AMI connected") >= 2
        # A link that dies silently (no FIN: here Asterisk frozen by SIGSTOP, the kernel still holds
        # the socket): the unanswered Ping ([blf] ping_seconds 1, ami_timeout 3) gives it away.
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            wait_for(lambda: meta().get("ami") == "down" and rec("302").get("state") == "unknown", 15,
                     what="states unknown after a silent link loss")
            assert time.monotonic() - t0 < 10
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        wait_for(lambda: meta().get("ami") == "up" and rec("302").get("state") == "busy", 30,
                 what="back after the freeze")
        wait_for(lambda: ami_connections(a) == 1, 10, what="one AMI connection (the frozen one is gone)")
        # a second daemon on the same config refuses to run (exit 75) instead of doubling the AMI link
        r = kit(cfg, "blf", "run", timeout=30)
        assert r.returncode == 75 and ami_connections(a) == 1
        # the daemon SIGKILLed: the page says so once the heartbeat is older than stale_seconds (3)
        daemon.proc.kill()
        daemon.proc.wait(10)
        wait_for(lambda: browser.find_element(By.ID, "blf-status").get_attribute("data-stale") == "nodaemon", 15,
                 what="the page says the service is not running")
        assert "Служба BLF не работает" in browser.find_element(By.ID, "blf-status").text
        daemon.stop()
        daemon = Daemon(cfg).start()             # started again: live again, same states
        wait_for(lambda: browser.find_element(By.ID, "blf-status").get_attribute("data-stale") == ""
                 and tile(browser, "302").get_attribute("data-state") == "busy", 30, what="live after a new start")
    finally:
        srv.stop()
        assert daemon.stop() == 0
        a.stop()
    assert json.loads(mcc.get("restart-test:blf:meta"))["ami"] == "stopped"


# ---- the init.d script ------------------------------------------------------------------------------

def test_initd_script_lsb_lifecycle(tmp_path, asterisk, mc):
    import getpass
    import os
    secret = add_blf_ami_user(asterisk)
    cfg = blf_config(tmp_path, asterisk, mc.server, secret)
    cfg.write_text(cfg.read_text().replace("[memcached]\n", "[memcached]\nprefix = initd-test\n"))
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "extensions.conf").write_text("[globals]\n")
    initd = tmp_path / "init.d"
    kit(cfg, "install", "--initd-dir", str(initd), "--no-cron", "--asterisk-etc", str(etc), check=True)
    script = initd / "asterisk-kit-blf"
    text = script.read_text()
    assert "### BEGIN INIT INFO" in text and "# Provides:          asterisk-kit-blf" in text
    assert "@ASTERISK_KIT@" not in text and os.access(script, os.X_OK)
    pidfile = tmp_path / "blf.pid"
    defaults = tmp_path / "defaults"
    defaults.write_text(f"RUN_AS={getpass.getuser()}\nCONFIG={cfg}\nPIDFILE={pidfile}\n")
    env = dict(os.environ, ASTERISK_KIT_DEFAULTS=str(defaults))
    mcc = mc.client()

    def sh(*a):
        return subprocess.run([str(script), *a], capture_output=True, text=True, env=env, timeout=60)

    def meta():
        raw = mcc.get("initd-test:blf:meta")
        return json.loads(raw) if raw else {}

    assert sh("status").returncode == 3
    assert sh("reload").returncode == 7            # LSB: program is not running
    try:
        assert sh("start").returncode == 0
        pid = pidfile.read_text().strip()
        assert sh("start").returncode == 0          # already running: success, same process
        assert pidfile.read_text().strip() == pid
        st = sh("status")
        assert st.returncode == 0 and f"is running (pid {pid})" in st.stdout
        wait_for(lambda: meta().get("ami") == "up", 30, what="the daemon started by init.d logged in to AMI")
        assert sh("reload").returncode == 0
        wait_for(lambda: "SIGHUP: config reloaded" in "".join(
            p.read_text() for p in (tmp_path / "log").glob("blf-*.log")), 15, what="reload = SIGHUP")
        assert pidfile.read_text().strip() == pid, "reload must not restart"
        assert sh("restart").returncode == 0 and sh("status").returncode == 0
        assert pidfile.read_text().strip() != pid
    finally:
        assert sh("stop").returncode == 0
    assert meta().get("ami") == "stopped", "SIGTERM is a clean stop"
    assert sh("stop").returncode == 0                # stopping a stopped service is success
    assert sh("status").returncode == 3
    pidfile.write_text("999999\n")                   # a stale pidfile: dead but pidfile left
    assert sh("status").returncode == 1
    pidfile.unlink()
    assert sh("bogus").returncode == 2


# ---- names from FreePBX's MySQL ----------------------------------------------------------------------

def test_names_from_freepbx_mysql_refreshed_and_kept_when_mysql_goes(tmp_path, asterisk, mc, mariadb):
    secret = add_blf_ami_user(asterisk)
    asterisk.add_test_dialplan("blf_mysql", hints("blf-mysql", ["401", "402", "403"]))
    mariadb.execute("DELETE FROM users WHERE extension IN ('401', '402', '403')", database="asterisk")
    mariadb.executemany("INSERT INTO users (extension, name) VALUES (%s, %s)",
                        [("401", "Анна Иванова"), ("402", "Boris")], database="asterisk")
    cfg = blf_config(tmp_path, asterisk, mc.server, secret,
                     blf="contexts = blf-mysql\nnames = 402: Борис (из конфига)\nnames_refresh_seconds = 10\n",
                     extra=mariadb.mysql_section())
    cfg.write_text(cfg.read_text().replace("[memcached]\n", "[memcached]\nprefix = mysql-test\n"))
    mcc = mc.client()

    def name(x):
        raw = mcc.get(f"mysql-test:blf:ext:{x}")
        return json.loads(raw)["name"] if raw else None

    def kit_connections():
        return mariadb.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE user = %s",
                               (mariadb.kit_user,))[0][0]

    daemon = Daemon(cfg).start()
    try:
        wait_for(lambda: name("401") == "Анна Иванова", 30, what="the name from asterisk.users")
        assert name("402") == "Борис (из конфига)", "[blf] names win over MySQL"
        assert name("403") == "", "no name anywhere"
        # refreshed periodically ([blf] names_refresh_seconds = 10) over the same connection
        mariadb.execute("UPDATE users SET name = 'Анна Петрова' WHERE extension = '401'", database="asterisk")
        wait_for(lambda: name("401") == "Анна Петрова", 25, what="the periodic refresh")
        assert kit_connections() == 1, "one persistent connection"
        # MySQL gone: the last names stay, the failure is logged
        mariadb.stop()
        try:
            daemon.hup()                 # SIGHUP also reads the names at once
            wait_for(lambda: "cannot read names from MySQL" in daemon.output(), 20, what="the failure logged")
            assert name("401") == "Анна Петрова" and name("402") == "Борис (из конфига)"
            assert daemon.proc.poll() is None
        finally:
            mariadb.start()
        mariadb.execute("UPDATE users SET name = 'Анна Сидорова' WHERE extension = '401'", database="asterisk")
        daemon.hup()
        wait_for(lambda: name("401") == "Анна Сидорова", 25, what="names again once MySQL is back")
        assert "MySQL is back" in daemon.output()
    finally:
        assert daemon.stop() == 0, daemon.output()[-2000:]
        mariadb.execute("DELETE FROM users WHERE extension IN ('401', '402', '403')", database="asterisk")


# ---- a real SIP phone --------------------------------------------------------------------------------

def test_real_sip_phone_states(tmp_path, mc):
    """baresip registers to a PJSIP endpoint: Unavailable -> Idle; rings on an incoming call; InUse
    on a call it makes; Idle again; Unavailable once it unregisters."""
    import shutil as _sh

    from testbed.baresip import BARESIP, Baresip, pjsip_conf
    if not _sh.which(BARESIP):
        pytest.skip("baresip is not installed (scripts/install-system-deps.sh installs it)")
    sip_port = free_port()
    a = Asterisk(tmp_path / "ast").setup()
    a.write_etc("pjsip.conf", pjsip_conf(sip_port, "101", "sip-secret-101", "blf-sip-test"))
    secret = add_blf_ami_user(a)
    a.add_test_dialplan("blf", "[ext-local]\nexten => 101,hint,PJSIP/101\n"
                               "[blf-sip-test]\nexten => 600,1,Answer()\n same => n,Wait(60)\n"
                               "exten => 101,1,Dial(PJSIP/101,30)\n", reload=False)
    a.start()
    cfg = blf_config(tmp_path / "kit", a, mc.server, secret)
    cfg.write_text(cfg.read_text().replace("[memcached]\n", "[memcached]\nprefix = sip-test\n"))
    mcc = mc.client()

    def state():
        raw = mcc.get("sip-test:blf:ext:101")
        return json.loads(raw)["state"] if raw else None

    daemon = Daemon(cfg).start()
    phone = Baresip(tmp_path / "phone", sip_port, "101", "sip-secret-101")
    try:
        wait_for(lambda: state() == "unavailable", 30, what="101 unavailable before the phone registers")
        phone.start()
        wait_for(lambda: state() == "idle", 20, what=f"idle once registered:\n{phone.output()[-800:]}")
        a.cli("channel originate Local/101@blf-sip-test application Wait 20")
        wait_for(lambda: state() == "ringing", 20, what="ringing on an incoming call")
        a.cli("channel request hangup all")
        wait_for(lambda: state() == "idle", 20, what="idle after the caller gave up")
        phone.command("/dial 600")
        wait_for(lambda: state() == "inuse", 20, what=f"in use during a call:\n{phone.output()[-800:]}")
        phone.command("/hangup")
        wait_for(lambda: state() == "idle", 20, what="idle after hanging up")
        phone.stop()
        wait_for(lambda: state() == "unavailable", 20, what="unavailable once unregistered")
    finally:
        if phone.proc:
            phone.stop()
        assert daemon.stop() == 0
        a.stop()
