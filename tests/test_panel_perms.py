"""Who may do what on the panel, without Asterisk: the permissions table and its upgrade of existing
stores, `asterisk-kit user set|show`, the checks of an action's input and target, the privacy helper,
the config keys, and the admin page in Chromium at phone width (ru and en)."""
from __future__ import annotations

import sqlite3
import subprocess

import pytest
from selenium.webdriver.common.by import By

from asterisk_kit import storage
from asterisk_kit.blf import privacy
from asterisk_kit.blf.actions import ActionError, Panel, Request
from asterisk_kit.config import load
from asterisk_kit.web import auth, perms
from testbed.browser import browser, login, wait_for  # noqa: F401 - fixture
from testbed.kitcli import BIN, kit
from testbed.webserver import WebServer

PASSWORD = "panel perms 1"


def write_config(path, blf="groups = Sales: 101-102; Support: 103\n"):
    path.mkdir(parents=True, exist_ok=True)
    cfg = path / "kit.ini"
    cfg.write_text(f"""[general]
data_dir = {path}/data
[log]
dir = {path}/log
[asterisk]
ami_user = kit
ami_secret = not-used-here
spool_dir = {path}/spool
etc_dir = {path}/etc
run_user =
[blf]
{blf}""")
    return cfg


def add(cfg, name):
    subprocess.run([str(BIN), "--config", str(cfg), "user", "add", name, "--password-stdin"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)


def test_existing_users_keep_view_and_numbers_and_the_oldest_is_admin(tmp_path):
    """A store from before the permissions table: nothing its users had is lost."""
    conn = storage.connect(path=tmp_path / "kit.sqlite")
    storage.migrate(conn, "web_auth", auth.MIGRATIONS)      # the schema as it was
    conn.execute("INSERT INTO web_users VALUES ('zoe', 'x', 100, 100)")
    conn.execute("INSERT INTO web_users VALUES ('anna', 'x', 200, 200)")
    auth.init(conn)
    got = {p.name: (sorted(p.allowed), p.groups, p.extension) for p in perms.all_users(conn)}
    assert got == {"zoe": (["admin", "numbers", "view"], None, ""), "anna": (["numbers", "view"], None, "")}


def test_first_account_is_admin_later_ones_view_only_and_cli_set(tmp_path):
    cfg = write_config(tmp_path)
    add(cfg, "boss")
    add(cfg, "olga")
    assert kit(cfg, "user", "show", "boss").stdout.strip() == "boss\textension -\tallow view,numbers,admin\tgroups *"
    assert kit(cfg, "user", "show", "olga").stdout.strip() == "olga\textension -\tallow view\tgroups *"
    r = kit(cfg, "user", "set", "olga", "--extension", "101", "--allow", "dial,transfer", "--groups", "Sales,Support")
    assert r.returncode == 0 and r.stdout.strip() == \
        "olga\textension 101\tallow view,dial,transfer\tgroups Sales,Support"
    r = kit(cfg, "user", "set", "olga", "--deny", "transfer", "--groups", "*")
    assert r.stdout.strip() == "olga\textension 101\tallow view,dial\tgroups *"
    for args, msg in ((["--allow", "fly"], "unknown permission 'fly'"),
                      (["--extension", "10a1"], "invalid extension '10a1'"),
                      (["--groups", "Sales;x"], "invalid group name 'Sales;x'")):
        r = kit(cfg, "user", "set", "olga", *args)
        assert r.returncode == 1 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = kit(cfg, "user", "set", "boss", "--deny", "admin")
    assert r.returncode == 1 and "last admin" in r.stderr
    assert kit(cfg, "user", "set", "ghost", "--allow", "dial").returncode == 1
    assert "allow view,dial" in kit(cfg, "user", "list").stdout
    # Deleting a user removes their row too (nothing left behind for a later account of that name).
    kit(cfg, "user", "delete", "olga", check=True)
    conn = sqlite3.connect(str(tmp_path / "data" / "asterisk-kit.sqlite"))
    assert conn.execute("SELECT COUNT(*) FROM web_user_perms WHERE name = 'olga'").fetchone()[0] == 0


def P(allowed, ext="101", groups=None):
    return perms.Perms("u", ext, frozenset(allowed), None if groups is None else frozenset(groups))


def test_action_input_is_validated_before_anything():
    for bad in ({"action": "dial", "target": "102\r\nApplication: System"}, {"action": "dial", "target": "1" * 33},
                {"action": "dial", "target": "10 2"}, {"action": "Originate"}, {"action": "transfer"},
                {"action": "pickup", "target": "#1"}, {"action": "pause", "queue": "q;x"}, [], "dial",
                {"action": "dial", "target": 102}):
        with pytest.raises(ActionError) as e:
            Request.parse(bad)
        assert e.value.status == 400
    assert Request.parse({"action": "dial", "target": "+7495*1#"}).target == "+7495*1#"


def test_permission_and_group_checks(tmp_path):
    panel = Panel(load(str(write_config(tmp_path))))
    sales = P({"dial", "transfer", "pickup", "hangup", "queue"}, groups={"Sales"})

    def status(p, action, target=""):
        try:
            panel.check(p, Request(action, target))
            return 200
        except ActionError as e:
            return e.key
    assert status(sales, "dial", "102") == 200
    assert status(sales, "dial", "84951234567") == 200                 # an outside number: no group
    assert status(sales, "dial", "103") == "panel.forbidden_target"
    assert status(sales, "transfer", "103") == "panel.forbidden_target"
    assert status(sales, "transfer", "999") == "panel.forbidden_target"  # in no group: only for all-groups users
    assert status(sales, "pickup", "102") == 200
    assert status(sales, "hangup", "") == 200 and status(sales, "hangup", "101") == 200
    assert status(sales, "pause", "") == 200 and status(sales, "pause", "102") == "panel.forbidden"
    assert status(P({"queue", "queue_others"}, groups={"Sales"}), "pause", "102") == 200
    assert status(P({"view"}), "dial", "102") == "panel.forbidden"
    assert status(P({"dial"}, ext=""), "dial", "102") == "panel.no_extension"
    assert status(P({"dial"}), "dial", "103") == 200                 # every group


def test_privacy_redact_strips_other_parties_numbers():
    rec = {"exten": "101", "name": "Olga", "state": "inuse", "callerid_num": "84951234567",
           "connected": "102", "calls": [{"peer_number": "89161112233", "since": 5, "caller": {"num": "1"}}]}
    out = privacy.redact(rec, P({"view"}))
    assert out == {"exten": "101", "name": "Olga", "state": "inuse", "callerid_num": None, "connected": None,
                   "calls": [{"peer_number": None, "since": 5, "caller": None}]}
    assert rec["callerid_num"] == "84951234567", "the original is not changed"
    assert privacy.redact(rec, P({"view", "numbers"})) is rec
    assert privacy.redact(rec, None)["connected"] is None


def test_action_config_keys_name_the_problem(tmp_path):
    cfg = write_config(tmp_path / "a", "phone_channel = PJSIP/101\ndial_context = from internal\n")
    r = kit(cfg, "config", "check")
    assert r.returncode == 2
    assert f"{cfg}: [blf] phone_channel: expected a channel with {{exten}} once" in r.stderr
    assert f"{cfg}: [blf] dial_context: expected a dialplan context name" in r.stderr
    # Cross-key checks run once every key parsed.
    cfg = write_config(tmp_path / "b", "action_ami_user = panel\n")
    r = kit(cfg, "config", "check")
    assert r.returncode == 2
    assert f"{cfg}: [blf] action_ami_secret: required when action_ami_user is set" in r.stderr


def test_originate_context_only_dials_the_users_phone(tmp_path):
    from asterisk_kit.install import render_dialplan
    cfg = load(str(write_config(tmp_path, "phone_channel = SIP/{exten}\nring_seconds = 25\n")))
    text = render_dialplan(cfg)
    block = text[text.index("[asterisk-kit-panel-ring]"):]
    assert block.splitlines()[1:3] == ["exten => _X.,1,Dial(SIP/${EXTEN},25)", " same => n,Hangup()"]


@pytest.mark.browser
@pytest.mark.parametrize("lang, title", [("ru", "Пользователи и права"), ("en", "Users and permissions")])
def test_users_page_in_chromium_at_phone_width(tmp_path, browser, lang, title):  # noqa: F811
    cfg = write_config(tmp_path)
    add(cfg, "boss")
    add(cfg, "olga")
    srv = WebServer(cfg).start()
    try:
        browser.delete_all_cookies()
        browser.set_window_size(390, 844)
        login(browser, srv.url, "boss", PASSWORD)
        browser.get(srv.url + f"/lang/{lang}?next=/users")
        wait_for(lambda: browser.find_elements(By.ID, "user-olga"), what="the users page")
        assert browser.find_element(By.TAG_NAME, "h1").text == title
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        form = browser.find_element(By.ID, "user-olga")
        form.find_element(By.NAME, "extension").send_keys("102")
        form.find_element(By.CSS_SELECTOR, "input[value=dial]").click()
        form.find_element(By.CSS_SELECTOR, "input[name=all_groups]").click()
        form.find_element(By.CSS_SELECTOR, "input[name=group][value=Sales]").click()
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(lambda: browser.find_elements(By.ID, "users-notice"), what="saved")
        assert kit(cfg, "user", "show", "olga").stdout.strip() == "olga\textension 102\tallow view,dial\tgroups Sales"
        browser.get(srv.url + "/users/audit")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        # The menu shows the page to the admin only.
        assert browser.find_elements(By.CSS_SELECTOR, "nav.menu a[href='/users']")
    finally:
        browser.set_window_size(1280, 900)
        srv.stop()
