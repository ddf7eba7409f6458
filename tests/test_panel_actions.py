"""The panel's actions on the real testbed: baresip phones registered to PJSIP endpoints 101-103 of a
private Asterisk 22, the panel's AMI user exactly as shipped (manager/asterisk-kit-panel-actions.conf), the
kit's rendered originate context, an app_queue queue, and the real `asterisk-kit web` over HTTP.
A refusal is checked on the Asterisk side too: the panel's AMI user never logs in for it."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import requests

from testbed.asterisk import free_port
from testbed.baresip import BARESIP
from testbed.browser import wait_for
from testbed.kitcli import BIN, kit
from testbed.panel import Pbx, kit_config
from testbed.webserver import WebServer

pytestmark = [pytest.mark.asterisk]
PASSWORD = "panel actions 1"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not shutil.which(BARESIP):
        pytest.skip("baresip is not installed (scripts/install-system-deps.sh installs it)")
    d = tmp_path_factory.mktemp("panel")
    pbx = Pbx(d).start()
    srv = None
    try:
        cfg = kit_config(d / "kit", pbx.a)
        pbx.install_kit_dialplan(cfg)
        for name in ("admin", "op", "sales", "viewer"):
            subprocess.run([str(BIN), "--config", str(cfg), "user", "add", name, "--password-stdin"],
                           input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        kit(cfg, "user", "set", "op", "--extension", "101", "--allow", "dial,transfer,pickup,hangup,queue",
            check=True)
        kit(cfg, "user", "set", "sales", "--extension", "101", "--allow",
            "dial,transfer,pickup,hangup,queue", "--groups", "Sales", check=True)
        kit(cfg, "user", "set", "viewer", "--extension", "102", check=True)
        pbx.start_phones()
        srv = WebServer(cfg).start()
        srv.cfg, srv.pbx = cfg, pbx
        yield srv
    finally:
        if srv:
            srv.stop()
        pbx.stop()


@pytest.fixture(autouse=True)
def no_calls_left(site):
    yield
    site.pbx.hangup_all()


def login(site, user):
    s = requests.Session()
    page = s.get(site.url + "/login", timeout=10)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = s.post(site.url + "/login", data={"csrf": token, "user": user, "password": PASSWORD, "next": "/"},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text
    home = s.get(site.url + "/", timeout=10).text
    s.headers["X-CSRF-Token"] = re.search(r'name="csrf" value="([^"]+)"', home).group(1)
    s.headers["Accept"] = "application/json"
    return s


def act(s, site, action, target="", **extra):
    return s.post(site.url + "/blf/action", json=dict(action=action, target=target, **extra), timeout=15)


def accept(site, exten):
    """Phone EXTEN answers once it rings."""
    wait_for(lambda: site.pbx.channels_of(exten, "Ringing"), 15, what=f"{exten} ringing")
    site.pbx.phones[exten].command("/accept")
    wait_for(lambda: site.pbx.channels_of(exten, "Up"), 15, what=f"{exten} answered")


def talking(site, caller, callee):
    """CALLER's phone dials CALLEE, who answers: one bridged call."""
    site.pbx.phones[caller].command(f"/dial {callee}")
    accept(site, callee)


def test_click_to_dial_rings_own_phone_then_the_target(site):
    s = login(site, "op")
    r = act(s, site, "dial", "102")
    assert r.status_code == 200 and r.json()["ok"], r.text
    # The user's own phone rings first (Asterisk's channels and the phone itself)...
    wait_for(lambda: site.pbx.channels_of("101", "Ringing"), 10, what="101 ringing")
    assert not site.pbx.channels_of("102"), "the target must not ring before the user answers"
    wait_for(lambda: "Incoming call" in site.pbx.phones["101"].output(), 10, what="baresip 101 sees the call")
    site.pbx.phones["101"].command("/accept")
    # ...then the target.
    wait_for(lambda: site.pbx.channels_of("102", "Ringing"), 10, what="102 ringing after 101 answered")
    wait_for(lambda: "Incoming call from: 102 sip:101@" in site.pbx.phones["102"].output(), 10,
             what="baresip 102 rung by 101")


def test_blind_transfer_moves_a_talking_call(site):
    talking(site, "103", "101")
    caller = site.pbx.channels_of("103", "Up")[0]["Channel"]
    s = login(site, "op")
    r = act(s, site, "transfer", "102")
    assert r.status_code == 200, r.text
    wait_for(lambda: site.pbx.channels_of("102", "Ringing"), 10, what="102 ringing with the transferred call")
    wait_for(lambda: not site.pbx.channels_of("101"), 10, what="101 out of the call")
    site.pbx.phones["102"].command("/accept")
    wait_for(lambda: site.pbx.channels_of("102", "Up"), 10, what="102 talking")
    assert [c["Channel"] for c in site.pbx.channels_of("103", "Up")] == [caller], "the caller is the same channel"


def test_pickup_moves_a_ringing_call_to_the_users_phone(site):
    site.pbx.phones["103"].command("/dial 102")
    wait_for(lambda: site.pbx.channels_of("102", "Ringing"), 10, what="102 ringing")
    s = login(site, "op")
    r = act(s, site, "pickup", "102")
    assert r.status_code == 200, r.text
    wait_for(lambda: site.pbx.channels_of("101", "Ringing"), 10, what="the call ringing on 101")
    wait_for(lambda: not site.pbx.channels_of("102"), 10, what="102 no longer ringing")
    site.pbx.phones["101"].command("/accept")
    wait_for(lambda: site.pbx.channels_of("101", "Up") and site.pbx.channels_of("103", "Up"), 10,
             what="103 talking to 101")


def test_pickup_of_an_extension_not_ringing_is_a_clear_409(site):
    s = login(site, "op")
    r = act(s, site, "pickup", "102")
    assert r.status_code == 409 and r.json()["reason"] == "panel.not_ringing"


def test_hangup_ends_the_users_call(site):
    talking(site, "103", "101")
    s = login(site, "op")
    r = act(s, site, "hangup")
    assert r.status_code == 200, r.text
    wait_for(lambda: not site.pbx.channels_of("101") and not site.pbx.channels_of("103"), 10,
             what="the call ended")


def queue_paused(site, interface="PJSIP/101"):
    from asterisk_kit.ami import AmiClient
    a = site.pbx.a
    with AmiClient("127.0.0.1", a.ami_port, a.ami_user, a.ami_secret) as ami:
        rows = ami.list_action("QueueStatus", Queue="support")[1]
    member = [r for r in rows if r.get("Event") == "QueueMember" and r.get("Location") == interface]
    assert member, rows
    return member[0]["Paused"]


def test_queue_pause_and_unpause_show_in_queue_status(site):
    s = login(site, "op")
    assert queue_paused(site) == "0"
    assert act(s, site, "pause", queue="support").status_code == 200
    assert queue_paused(site) == "1"
    assert act(s, site, "unpause").status_code == 200
    assert queue_paused(site) == "0"


@pytest.mark.parametrize("user, action, target, reason", [
    ("viewer", "dial", "101", "panel.forbidden"),               # no `dial`
    ("viewer", "hangup", "", "panel.forbidden"),
    ("sales", "dial", "103", "panel.forbidden_target"),         # 103 is in Support, sales sees Sales only
    ("sales", "transfer", "103", "panel.forbidden_target"),
    ("sales", "pickup", "103", "panel.forbidden_target"),
    ("sales", "hangup", "103", "panel.forbidden_target"),
    ("sales", "pause", "102", "panel.forbidden"),               # no `queue_others`
])
def test_refused_actions_send_nothing_to_asterisk(site, user, action, target, reason):
    s = login(site, user)
    before = site.pbx.panel_logins()
    r = act(s, site, action, target)
    assert r.status_code == 403 and r.json()["reason"] == reason, r.text
    # Asterisk's log: the panel's AMI user did not even log in (and the positive control below does).
    assert site.pbx.panel_logins() == before
    out = kit(site.cfg, "user", "audit", "--user", user, "--limit", "1", check=True).stdout
    assert f"\t{user}\t{action}\t{target or '-'}\trefused\t127.0.0.1\t" in out, out


def test_an_allowed_action_does_log_in_to_asterisk(site):
    """The positive control of the test above: the log line counted is the one an action writes."""
    s = login(site, "sales")
    before = site.pbx.panel_logins()
    assert act(s, site, "unpause").status_code == 200
    wait_for(lambda: site.pbx.panel_logins() == before + 1, 5, what="one panel login in Asterisk's log")


def test_bad_input_and_no_csrf_are_refused_before_anything(site):
    s = login(site, "op")
    before = site.pbx.panel_logins()
    for body in ({"action": "dial", "target": "102;Application: System"}, {"action": "dial", "target": "1" * 33},
                 {"action": "explode"}, {"action": "dial"}, {"action": "pickup", "target": "*8"}, ["dial"]):
        r = s.post(site.url + "/blf/action", json=body, timeout=10)
        assert r.status_code == 400, (body, r.text)
    r = s.post(site.url + "/blf/action", data=b"{not json", timeout=10)
    assert r.status_code == 400
    r = requests.post(site.url + "/blf/action", json={"action": "dial", "target": "102"}, timeout=10,
                      cookies=s.cookies, headers={"Accept": "application/json"})
    assert r.status_code == 403                                     # no CSRF token
    r = requests.post(site.url + "/blf/action", json={"action": "dial", "target": "102"}, timeout=10,
                      headers={"Accept": "application/json"})
    assert r.status_code == 401                                     # no login
    assert site.pbx.panel_logins() == before
    assert not site.pbx.channels()


def test_rate_limit_answers_429_per_user(site, tmp_path):
    cfg = tmp_path / "kit.ini"
    cfg.write_text(site.cfg.read_text().replace(str(site.cfg.parent), str(tmp_path))
                   + "actions_per_minute = 2\n")
    for name in ("viewer", "op"):
        subprocess.run([str(BIN), "--config", str(cfg), "user", "add", name, "--password-stdin"],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    srv = WebServer(cfg, port=free_port()).start()
    try:
        s = login(srv, "viewer")
        assert [act(s, srv, "dial", "101").status_code for _ in range(3)] == [403, 403, 429]
        r = act(s, srv, "dial", "101")
        assert r.status_code == 429 and r.json()["reason"] == "panel.rate_limited"
        # Another user is not held back by the first one's burst.
        assert act(login(srv, "op"), srv, "dial", "101").status_code == 403
        out = kit(cfg, "user", "audit", "--user", "viewer", check=True).stdout.splitlines()
        assert [line.split("\t")[4] for line in out] == ["rate-limited", "rate-limited", "refused", "refused"]
    finally:
        srv.stop()


def test_users_page_is_admin_only_and_sets_permissions(site):
    s = login(site, "viewer")
    assert s.get(site.url + "/users", timeout=10).status_code == 403
    assert "/users" not in s.get(site.url + "/", headers={"Accept": "text/html"}, timeout=10).text
    a = login(site, "admin")
    page = a.get(site.url + "/users", headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and 'id="user-viewer"' in page.text
    r = a.post(site.url + "/users/viewer", data={"extension": "102", "perm": ["view", "dial"], "group": ["Sales"]},
               headers={"Accept": "text/html"}, timeout=10)
    assert r.status_code == 200, r.text
    assert kit(site.cfg, "user", "show", "viewer", check=True).stdout.strip() == \
        "viewer\textension 102\tallow view,dial\tgroups Sales"
    # Back to what the other tests expect.
    kit(site.cfg, "user", "set", "viewer", "--only", "view", "--groups", "*", check=True)
    audit = a.get(site.url + "/users/audit", headers={"Accept": "text/html"}, timeout=10)
    assert audit.status_code == 200 and 'id="audit"' in audit.text
    assert s.get(site.url + "/users/audit", timeout=10).status_code == 403


def test_call_back_button_in_the_page_dials_through_the_action_endpoint(site):
    """The panel page offers call back only to a user allowed to dial, and its button's hook
    (window.akPanelAction) goes through POST /blf/action: the user's phone rings first."""
    from testbed.browser import login as browser_login
    from testbed.browser import new_browser, quit_browser
    drv = new_browser()
    try:
        browser_login(drv, site.url, "viewer", PASSWORD)
        drv.get(site.url + "/blf")
        assert drv.execute_script("return document.getElementById('blf').getAttribute('data-dial')") == "0"
        drv.delete_all_cookies()
        browser_login(drv, site.url, "op", PASSWORD)
        drv.get(site.url + "/blf")
        assert drv.execute_script("return document.getElementById('blf').getAttribute('data-dial')") == "1"
        answer = drv.execute_async_script(
            "var done = arguments[arguments.length - 1]; window.akPanelAction('dial', '102').then(done);")
        assert answer and answer.get("ok") is True, answer
        wait_for(lambda: site.pbx.channels_of("101", "Ringing"), 10, what="101 ringing after the call back")
        wait_for(lambda: drv.execute_script(
            "var n = document.getElementById('blf-action-note'); return n && n.textContent"), 5, what="answer shown")
    finally:
        quit_browser(drv)


# ---- the panel page's action buttons (headless Chromium) ---------------------------------------------

@pytest.fixture(scope="module")
def board(site, tmp_path_factory):
    """The same PBX with FreePBX-like hints, a BLF daemon and memcached, and a web process reading them:
    the /blf page has keys 101-103 to put buttons on."""
    from testbed.blf import Daemon, hints
    from testbed.memcached import Memcached
    site.pbx.a.add_test_dialplan("hints", hints("ext-local", ("101", "102", "103"), prefix="PJSIP/"))
    mc = Memcached().start()
    cfg = tmp_path_factory.mktemp("board") / "kit.ini"
    # the same store (users, permissions) and Asterisk; the daemon uses [asterisk]'s test AMI user. The
    # rate limit counts op's attempts of the whole module (the same audit table): raised for these tests.
    text = site.cfg.read_text().replace("[blf]\n", "[blf]\nactions_per_minute = 500\n", 1)
    cfg.write_text(text + f"[memcached]\nservers = {mc.server}\n")
    daemon = Daemon(cfg).start()
    srv = WebServer(cfg, port=free_port()).start()
    srv.pbx, srv.cfg = site.pbx, cfg
    try:
        yield srv
    finally:
        srv.stop()
        daemon.stop()
        mc.stop()


@pytest.fixture
def drv():
    from testbed.browser import new_browser, quit_browser
    d = new_browser(lang="en")
    try:
        yield d
    finally:
        quit_browser(d)


def open_panel(drv, board, user, path="/blf"):
    from testbed.browser import login as browser_login
    drv.delete_all_cookies()
    browser_login(drv, board.url, user, PASSWORD)
    drv.get(board.url + path)
    wait_for(lambda: drv.execute_script("return !!document.querySelector('#ext-102 .num')"), 20, what="key 102")


def buttons(drv, css=".act"):
    return drv.execute_script(
        "return Array.prototype.map.call(document.querySelectorAll(arguments[0]), function (b) {"
        " var t = b.closest('.tile'); return [t ? t.getAttribute('data-exten') : '', b.getAttribute('data-act'),"
        " b.getAttribute('aria-label') || ''] })", css)


def test_action_buttons_only_for_what_the_user_may_do(board, drv):
    open_panel(drv, board, "op")
    wait_for(lambda: ["102", "dial"] in [b[:2] for b in buttons(drv)], 10, what="op's dial buttons")
    got = buttons(drv, ".tile .act")
    assert {(x, a) for x, a, _ in got} == {("102", "dial"), ("103", "dial")}, got   # not on the own key 101
    assert all(label for _, _, label in got), got                                      # every button labelled
    assert drv.execute_script("return !document.getElementById('blf-dialbox').hidden")
    # queue member 101 of `support` is op's own: pause offered (op has `queue`)
    wait_for(lambda: buttons(drv, ".member .act"), 10, what="pause button on op's queue member")
    assert [b[1] for b in buttons(drv, ".member .act")] == ["pause"]
    # viewer: view only, no button and no dial box, though it is the same page
    open_panel(drv, board, "viewer")
    wait_for(lambda: drv.execute_script("return document.getElementById('blf').getAttribute('data-can')") == "view",
             10, what="viewer's permissions loaded")
    assert buttons(drv) == []
    assert drv.execute_script("return document.getElementById('blf-dialbox').hidden")
    # a wall screen never has buttons, whoever is logged in
    open_panel(drv, board, "op", "/blf/wall")
    assert buttons(drv) == [] and drv.execute_script("return document.getElementById('blf').dataset.actions") == "0"


def test_dial_button_on_a_key_rings_own_phone_then_the_key(board, drv):
    open_panel(drv, board, "op")
    wait_for(lambda: drv.find_elements("css selector", "#ext-102 .act-dial"), 10, what="dial on 102")
    drv.find_element("css selector", "#ext-102 .act-dial").click()
    wait_for(lambda: board.pbx.channels_of("101", "Ringing"), 10, what="101 ringing after the dial button")
    assert not board.pbx.channels_of("102")
    board.pbx.phones["101"].command("/accept")
    wait_for(lambda: board.pbx.channels_of("102", "Ringing"), 10, what="102 ringing after 101 answered")


def test_typed_number_dial_box_is_keyboard_usable(board, drv):
    from selenium.webdriver.common.keys import Keys
    open_panel(drv, board, "op")
    wait_for(lambda: drv.execute_script("return !document.getElementById('blf-dialbox').hidden"), 10)
    box = drv.find_element("id", "blf-dial-number")
    box.send_keys("103", Keys.ENTER)
    wait_for(lambda: board.pbx.channels_of("101", "Ringing"), 10, what="101 ringing for the typed number")


def test_transfer_here_button_moves_the_users_call(board, drv):
    open_panel(drv, board, "op")
    talking(board, "103", "101")
    # offered once the page sees op's own key in a call
    wait_for(lambda: drv.find_elements("css selector", "#ext-102 .act-transfer"), 15, what="transfer on 102")
    assert not drv.find_elements("css selector", "#ext-101 .act-transfer")
    assert drv.find_elements("css selector", "#ext-101 .act-hangup"), "hang up on the own key in a call"
    drv.find_element("css selector", "#ext-102 .act-transfer").click()
    wait_for(lambda: board.pbx.channels_of("102", "Ringing"), 10, what="102 ringing with the transferred call")
    wait_for(lambda: not board.pbx.channels_of("101"), 10, what="101 out of the call")


def test_pickup_button_on_a_ringing_key(board, drv):
    open_panel(drv, board, "op")
    board.pbx.phones["103"].command("/dial 102")
    wait_for(lambda: drv.find_elements("css selector", "#ext-102 .act-pickup"), 15, what="pick up on ringing 102")
    drv.find_element("css selector", "#ext-102 .act-pickup").click()
    wait_for(lambda: board.pbx.channels_of("101", "Ringing"), 10, what="the call ringing on 101")


def test_buttons_fit_a_phone_screen(board, drv):
    import os
    from pathlib import Path
    drv.set_window_size(390, 844)
    open_panel(drv, board, "op")
    inner, inner_h = drv.execute_script("return [window.innerWidth, window.innerHeight]")
    drv.set_window_size(390 + (390 - inner), 844 + (844 - inner_h))     # the viewport, not the window
    talking(board, "103", "101")
    wait_for(lambda: drv.find_elements("css selector", "#ext-102 .act-transfer"), 15, what="buttons shown")
    wait_for(lambda: drv.execute_script("return !document.getElementById('blf-dialbox').hidden"), 5)
    assert drv.execute_script("return window.innerWidth") == 390
    width = drv.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, f"document {width} px wide at 390 px"
    shots = Path(os.environ.get("ASTERISK_KIT_SCREENSHOTS") or "/tmp/asterisk-kit-screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(shots / "panel-actions-390x844.png"))


def test_hang_up_button_on_own_key_and_drag_own_key_to_transfer(board, drv):
    open_panel(drv, board, "op")
    talking(board, "103", "101")
    # drag op's own key (in a call) onto 102: the page's drag-and-drop handlers with the browser's own
    # DragEvent/DataTransfer (WebDriver cannot drive HTML5 drag-and-drop with the mouse)
    wait_for(lambda: drv.execute_script("return document.getElementById('ext-101').draggable"), 15,
             what="own key draggable in a call")
    drv.execute_script("""
        var dt = new DataTransfer(), src = document.getElementById('ext-101');
        var dst = document.querySelector('#ext-102 .num');
        src.dispatchEvent(new DragEvent('dragstart', {bubbles: true, dataTransfer: dt}));
        dst.dispatchEvent(new DragEvent('dragover', {bubbles: true, cancelable: true, dataTransfer: dt}));
        dst.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: dt}));
        src.dispatchEvent(new DragEvent('dragend', {bubbles: true, dataTransfer: dt}));""")
    wait_for(lambda: board.pbx.channels_of("102", "Ringing"), 10, what="102 ringing after the drop")
    wait_for(lambda: not board.pbx.channels_of("101"), 10, what="101 out of the call")
    board.pbx.hangup_all()
    talking(board, "103", "101")
    wait_for(lambda: drv.find_elements("css selector", "#ext-101 .act-hangup"), 15, what="hang up on own key")
    drv.find_element("css selector", "#ext-101 .act-hangup").click()
    wait_for(lambda: not board.pbx.channels_of("101") and not board.pbx.channels_of("103"), 10, what="call ended")


def test_pause_button_on_own_queue_member(board, drv):
    open_panel(drv, board, "op")
    wait_for(lambda: drv.find_elements("css selector", ".member .act-pause"), 15, what="pause button")
    drv.find_element("css selector", ".member .act-pause").click()
    wait_for(lambda: queue_paused(board) == "1", 10, what="101 paused in QueueStatus")
    wait_for(lambda: drv.find_elements("css selector", ".member .act-unpause"), 15, what="unpause button")
    drv.find_element("css selector", ".member .act-unpause").click()
    wait_for(lambda: queue_paused(board) == "0", 10, what="101 unpaused in QueueStatus")


def test_server_refusal_of_a_button_is_shown_and_nothing_sent(board, drv):
    """The page's buttons are a convenience: permissions taken away after the page loaded are refused
    by the server (403) and the page says so."""
    open_panel(drv, board, "op")
    wait_for(lambda: drv.find_elements("css selector", "#ext-102 .act-dial"), 10, what="dial on 102")
    kit(board.cfg, "user", "set", "op", "--deny", "dial", check=True)
    try:
        before = board.pbx.panel_logins()
        drv.find_element("css selector", "#ext-102 .act-dial").click()
        wait_for(lambda: drv.execute_script(
            "var n = document.getElementById('blf-action-note'); return n && n.className.indexOf('error') >= 0"
            " && n.textContent"), 10, what="the refusal shown")
        assert drv.find_element("id", "blf-action-note").text in ("Нет права на это действие", "You may not do this")
        assert board.pbx.panel_logins() == before and not board.pbx.channels_of("101")
    finally:
        kit(board.cfg, "user", "set", "op", "--allow", "dial", check=True)


def test_a_user_limited_to_a_group_sees_only_its_keys_in_json_and_stream(board):
    """`user set sales --groups Sales` limits what sales SEES too: /blf.json and the live stream
    carry the Sales keys (101, 102) and never Support's 103; op (every group) gets all three."""
    import json as _json

    def keys_seen(user):
        s = login(board, user)
        wait_for(lambda: s.get(board.url + "/blf.json", timeout=10).json()["extensions"], 20, what="keys")
        from_json = {e["exten"] for e in s.get(board.url + "/blf.json", timeout=10).json()["extensions"]}
        with s.get(board.url + "/blf/events", stream=True, timeout=10) as r:
            assert r.status_code == 200
            buf = b""
            for chunk in r.iter_content(chunk_size=None):
                buf += chunk
                if b"\n\n" in buf and b"data: " in buf.split(b"\n\n")[0]:
                    break
        first = _json.loads(buf.split(b"\n\n")[0].rpartition(b"data: ")[2])
        return from_json, {e["exten"] for e in first["extensions"]}

    assert keys_seen("sales") == ({"101", "102"}, {"101", "102"})
    assert keys_seen("op") == ({"101", "102", "103"}, {"101", "102", "103"})
