"""The web shell: accounts from the command line, login / logout / sessions / CSRF / throttling over
real HTTP against `asterisk-kit web`, and the pages in a real headless Chromium (ru and en)."""
from __future__ import annotations

import re
import sqlite3

import pytest
import requests
from selenium.webdriver.common.by import By

from testbed.browser import login, wait_for
from testbed.webserver import WebServer

PASSWORD = "correct horse 1"

pytestmark = pytest.mark.browser


def write_config(path, extra_web=""):
    path.mkdir(parents=True, exist_ok=True)
    cfg = path / "kit.ini"
    cfg.write_text(f"""[general]
data_dir = {path}/data
[log]
dir = {path}/log
[asterisk]
ami_host = 127.0.0.1
ami_port = 5038
ami_user = kit
ami_secret = not-used-here
spool_dir = {path}/spool
etc_dir = {path}/etc
run_user =
[web]
language = ru
{extra_web}
""")
    return cfg


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("web")
    cfg = write_config(d, "login_max_failures = 3\nlogin_lockout_seconds = 10\n")
    assert run_user_cmd(cfg, "add", "olga", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    srv = WebServer(cfg).start()
    srv.cfg = cfg
    yield srv
    assert srv.stop() in (0, -15), srv.output()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def http_login(site, user="olga", password=PASSWORD, sess=None):
    s = sess or requests.Session()
    page = s.get(site.url + "/login", timeout=10)
    r = s.post(site.url + "/login", data={"csrf": csrf_of(page.text), "user": user, "password": password,
                                         "next": "/"}, allow_redirects=False, timeout=10)
    return s, r


# ---- accounts ------------------------------------------------------------------------------------

def run_user_cmd(cfg, *args, stdin=None):
    import subprocess

    from testbed.kitcli import BIN
    return subprocess.run([str(BIN), "--config", str(cfg), "user", *args], input=stdin, text=True,
                          capture_output=True, timeout=60)


def test_user_commands_and_hashing(tmp_path):
    cfg = write_config(tmp_path)
    r = run_user_cmd(cfg, "add", "anna", "--password-stdin", stdin="short\n")
    assert r.returncode == 1 and "at least 8 characters" in r.stderr
    r = run_user_cmd(cfg, "add", "bad name;", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 1 and "invalid user name" in r.stderr
    assert run_user_cmd(cfg, "add", "anna", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    r = run_user_cmd(cfg, "add", "anna", "--password-stdin", stdin="another one 2\n")
    assert r.returncode == 1 and "already exists" in r.stderr
    listed = run_user_cmd(cfg, "list")
    assert listed.returncode == 0 and listed.stdout.split("\t")[0] == "anna"
    db = sqlite3.connect(tmp_path / "data" / "asterisk-kit.sqlite")
    (stored,) = db.execute("SELECT password FROM web_users WHERE name = 'anna'").fetchone()
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    assert run_user_cmd(cfg, "passwd", "anna", "--password-stdin", stdin="new password 3\n").returncode == 0
    (changed,) = db.execute("SELECT password FROM web_users WHERE name = 'anna'").fetchone()
    assert changed != stored
    r = run_user_cmd(cfg, "passwd", "nobody", "--password-stdin", stdin="new password 3\n")
    assert r.returncode == 1 and "no such user" in r.stderr
    assert run_user_cmd(cfg, "delete", "anna").returncode == 0
    assert run_user_cmd(cfg, "list").stdout == ""


def test_no_default_account(tmp_path):
    srv = WebServer(write_config(tmp_path)).start()
    try:
        for user, pw in (("admin", "admin"), ("admin", ""), ("asterisk", "asterisk")):
            _, r = http_login(srv, user, pw)
            assert r.status_code == 401
    finally:
        srv.stop()


# ---- sessions, CSRF, throttling over HTTP -------------------------------------------------------

def test_pages_need_login_and_headers_are_set(site):
    r = requests.get(site.url + "/", allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303) and r.headers["Location"].endswith("/login?next=%2F")
    page = requests.get(site.url + "/login", timeout=10)
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert requests.get(site.url + "/static/kit.css", timeout=10).status_code == 200
    assert requests.get(site.url + "/static/../kit.ini", timeout=10).status_code in (403, 404)


def test_login_logout_and_server_side_session(site):
    s, r = http_login(site)
    assert r.status_code == 303 and r.headers["Location"].endswith("/")
    home = s.get(site.url + "/", timeout=10)
    assert home.status_code == 200 and "Вы вошли как olga." in home.text
    sid = s.cookies["ak_session"]
    db = sqlite3.connect(site.cfg.parent / "data" / "asterisk-kit.sqlite")
    assert db.execute("SELECT count(*) FROM web_sessions WHERE id_hash = ?", (sid,)).fetchone()[0] == 0, \
        "session ids must be stored hashed"
    out = s.post(site.url + "/logout", data={"csrf": csrf_of(home.text)}, allow_redirects=False, timeout=10)
    assert out.status_code == 303
    # The old cookie is worthless once logged out: the session lived on the server.
    replay = requests.get(site.url + "/", cookies={"ak_session": sid}, allow_redirects=False, timeout=10)
    assert replay.status_code in (302, 303)


def test_post_without_csrf_is_refused(site):
    s, _ = http_login(site)
    home = s.get(site.url + "/", timeout=10)
    r = s.post(site.url + "/logout", data={}, allow_redirects=False, timeout=10)
    assert r.status_code == 403 and "Обновите страницу" in r.text
    r = s.post(site.url + "/logout", data={"csrf": "forged"}, allow_redirects=False, timeout=10)
    assert r.status_code == 403
    assert s.get(site.url + "/", allow_redirects=False, timeout=10).status_code == 200, "still logged in"
    r = s.post(site.url + "/logout", headers={"X-CSRF-Token": csrf_of(home.text)}, allow_redirects=False,
               timeout=10)
    assert r.status_code == 303
    # The login form itself needs its token too.
    r = requests.post(site.url + "/login", data={"user": "olga", "password": PASSWORD}, allow_redirects=False,
                      timeout=10)
    assert r.status_code == 403 and "ak_session" not in r.text


def test_login_fixation_and_open_redirect(site):
    s = requests.Session()
    page = s.get(site.url + "/login?next=//evil.example/x", timeout=10)
    assert "ak_session" not in s.cookies, "no session before login"
    before = "planted-by-an-attacker"
    s.cookies.set("ak_session", before, domain="127.0.0.1", path="/")
    r = s.post(site.url + "/login", data={"csrf": csrf_of(page.text), "user": "olga", "password": PASSWORD,
                                         "next": "//evil.example/x"}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] in (site.url + "/", "/")
    assert s.cookies["ak_session"] != before, "the session id must change at login"


def test_throttling_after_failures(site):
    import time
    # [web] login_max_failures = 3, login_lockout_seconds = 10 in this site's config.
    s = requests.Session()
    for _ in range(3):
        _, r = http_login(site, "olga", "wrong password", sess=s)
        assert r.status_code == 401 and "Неверное имя пользователя или пароль" in r.text
    _, r = http_login(site, "olga", PASSWORD, sess=s)
    assert r.status_code == 429 and "Слишком много неудачных попыток" in r.text
    # Once the lockout is over the right password works again (tries while locked count nothing).
    deadline = time.monotonic() + 30
    while True:
        _, r = http_login(site, "olga", PASSWORD, sess=s)
        if r.status_code != 429 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status_code == 303


# ---- the pages in Chromium ----------------------------------------------------------------------

def test_browser_login_language_and_logout(site, browser):
    login(browser, site.url, "olga", "wrong password")
    assert "Неверное имя пользователя или пароль" in browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "user").get_attribute("value") == "olga"
    login(browser, site.url, "olga", PASSWORD)
    assert browser.find_element(By.ID, "current-user").text == "olga"
    assert "Вы вошли как olga." in browser.find_element(By.ID, "hello").text
    browser.find_element(By.ID, "lang-switch").click()
    wait_for(lambda: "Logged in as olga." in browser.find_element(By.ID, "hello").text, what="English page")
    assert browser.find_element(By.ID, "logout").text == "Log out"
    browser.find_element(By.ID, "logout").click()
    wait_for(lambda: browser.find_elements(By.ID, "notice"), what="the logout notice")
    assert browser.find_element(By.ID, "notice").text == "You have logged out."
    browser.get(site.url + "/")
    wait_for(lambda: "/login" in browser.current_url, what="redirect to the login page")
    browser.find_element(By.ID, "lang-switch").click()
    wait_for(lambda: browser.find_element(By.ID, "submit").text == "Войти", what="Russian login page")


def test_browser_csrf_less_post_and_throttling(site, browser):
    import time
    login(browser, site.url, "olga", PASSWORD)
    # A form posted without the token (what a forged cross-site form would do) is refused.
    browser.execute_script(
        "var f = document.createElement('form'); f.method = 'post'; f.action = '/logout';"
        "document.body.appendChild(f); f.submit();")
    wait_for(lambda: browser.find_elements(By.ID, "error"), what="the refusal page")
    assert "Обновите страницу" in browser.find_element(By.ID, "error").text
    browser.get(site.url + "/")
    assert browser.find_element(By.ID, "current-user").text == "olga", "the forged logout must not log out"
    browser.find_element(By.ID, "logout").click()
    wait_for(lambda: browser.find_elements(By.ID, "notice"), what="logged out")
    # [web] login_max_failures = 3: the 4th try is refused even with the right password.
    for _ in range(3):
        login(browser, site.url, "olga", "not the password")
        assert "Неверное" in browser.find_element(By.ID, "error").text
    login(browser, site.url, "olga", PASSWORD)
    assert "Слишком много неудачных попыток" in browser.find_element(By.ID, "error").text
    assert not browser.find_elements(By.ID, "current-user")
    deadline = time.monotonic() + 30    # login_lockout_seconds = 10; tries while locked count nothing
    while True:
        login(browser, site.url, "olga", PASSWORD)
        if browser.find_elements(By.ID, "current-user") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert browser.find_element(By.ID, "current-user").text == "olga"


def test_password_change_ends_sessions(site):
    s, r = http_login(site)
    assert s.get(site.url + "/", allow_redirects=False, timeout=10).status_code == 200
    assert run_user_cmd(site.cfg, "passwd", "olga", "--password-stdin", stdin="brand new pass 4\n").returncode == 0
    assert s.get(site.url + "/", allow_redirects=False, timeout=10).status_code in (302, 303)
    _, r = http_login(site, "olga", "brand new pass 4")
    assert r.status_code == 303
    assert run_user_cmd(site.cfg, "passwd", "olga", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0


# ---- the init.d script ----------------------------------------------------------------------------

def test_initd_script_lifecycle(tmp_path):
    """The installed init.d script starts, reports, stops the web app with LSB exit codes."""
    import getpass
    import os
    import subprocess
    import time
    import urllib.request

    from testbed.asterisk import free_port
    from testbed.kitcli import kit as run_kit

    port = free_port()
    cfg = write_config(tmp_path, f"listen = 127.0.0.1\nport = {port}\n")
    initd = tmp_path / "init.d"
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "extensions.conf").write_text("[globals]\n")
    run_kit(cfg, "install", "--initd-dir", str(initd), "--no-cron", "--asterisk-etc", str(tmp_path / "etc"),
            check=True)
    script = initd / "asterisk-kit-web"
    text = script.read_text()
    assert "### BEGIN INIT INFO" in text and "# Provides:          asterisk-kit-web" in text
    defaults = tmp_path / "defaults"
    defaults.write_text(f"RUN_AS={getpass.getuser()}\nCONFIG={cfg}\nPIDFILE={tmp_path}/web.pid\n")
    env = dict(os.environ, ASTERISK_KIT_DEFAULTS=str(defaults))

    def sh(*a):
        return subprocess.run([str(script), *a], capture_output=True, text=True, env=env, timeout=60)

    assert sh("status").returncode == 3
    try:
        assert sh("start").returncode == 0
        assert sh("start").returncode == 0          # already running: still success (LSB)
        st = sh("status")
        assert st.returncode == 0 and "is running" in st.stdout
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "web app did not answer after init.d start"
                time.sleep(0.2)
        assert sh("restart").returncode == 0 and sh("status").returncode == 0
    finally:
        assert sh("stop").returncode == 0
    assert sh("status").returncode == 3
    assert sh("bogus").returncode == 2
