"""Login and server hardening of `asterisk-kit web`, against the real server over real sockets:
the atomic login throttle under a burst, lockout keys, scrypt cost and rehash, sessions (none for
anonymous visitors, pruning, absolute lifetime, a clear "session ended"), redirects that ignore the
client's Host, malformed and oversized bodies refused before the app, slow clients, and TLS in Chromium."""
from __future__ import annotations

import base64
import hashlib
import re
import socket
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from testbed.webserver import WebServer
from tests.test_web import PASSWORD, csrf_of, run_user_cmd, write_config

pytestmark = pytest.mark.browser


def proc_status(pid: int) -> dict:
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def proc_io(pid: int) -> dict:
    return {k: int(v) for k, v in (line.split(": ") for line in open(f"/proc/{pid}/io"))}


def login_page(srv, sess=None, headers=None):
    s = sess or requests.Session()
    page = s.get(srv.url + "/login", headers=headers or {}, timeout=30, verify=getattr(srv, "ca", True))
    return s, csrf_of(page.text)


def post_login(srv, s, token, user, password, headers=None, next_="/"):
    return s.post(srv.url + "/login", data={"csrf": token, "user": user, "password": password, "next": next_},
                  headers=headers or {}, allow_redirects=False, timeout=120, verify=getattr(srv, "ca", True))


def start(tmp_path, extra_web, users=(("olga", PASSWORD),)):
    cfg = write_config(tmp_path, extra_web)
    for name, pw in users:
        assert run_user_cmd(cfg, "add", name, "--password-stdin", stdin=pw + "\n").returncode == 0
    srv = WebServer(cfg, tls="tls_cert" in extra_web).start(timeout=60)
    srv.cfg = cfg
    return srv


def db_of(srv):
    return sqlite3.connect(srv.cfg.parent / "data" / "asterisk-kit.sqlite")


def log_text(srv) -> str:
    return "".join(p.read_text(errors="replace") for p in (srv.cfg.parent / "log").glob("web-*.log"))


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    """One server for the login tests; each test uses its own client address (X-Forwarded-For from the
    trusted loopback proxy), so their lockouts do not mix."""
    srv = start(tmp_path_factory.mktemp("hard"),
                "login_max_failures = 5\nlogin_max_failures_per_address = 12\nlogin_lockout_seconds = 120\n"
                "password_checks = 2\ntrusted_proxies = 127.0.0.1/32\nthreads = 16\n",
                users=(("olga", PASSWORD), ("ivan", PASSWORD)))
    yield srv
    assert srv.stop() in (0, -15), srv.output()


def via(addr: str) -> dict:
    return {"X-Forwarded-For": addr}


# ---- the login throttle -------------------------------------------------------------------------

def test_login_burst_checks_at_most_the_limit_and_refuses_the_right_password(hard):
    """100 concurrent attempts on one account from one address: 99 wrong, the right one sent just after.
    Check-then-record let 10-33 through and logged the right one in; now at most login_max_failures
    (5) are checked and the right password is refused while locked. RSS stays bounded (2 hashes at once)."""
    h = via("10.1.0.1")
    clients = [login_page(hard, headers=h) for _ in range(100)]
    go = threading.Barrier(100)
    results = [None] * 100

    def attempt(i):
        s, token = clients[i]
        go.wait()
        if i == 99:
            time.sleep(0.5)         # the right password comes in the same burst, behind the first wrong ones
        pw = PASSWORD if i == 99 else f"wrong guess {i}"
        results[i] = post_login(hard, s, token, "olga", pw, headers=h).status_code

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    st = proc_status(hard.proc.pid)
    checked = sum(1 for r in results if r in (401, 303))
    print(f"\nburst of 100: {checked} checked, {results.count(429)} refused (429), "
          f"right password -> {results[99]}; web process peak RSS {st['VmHWM']}, now {st['VmRSS']}, "
          f"threads {st['Threads']}")
    assert results.count(401) <= 5 and 303 not in results, results
    assert results.count(429) >= 94
    assert results[99] == 429, "the right password must be refused while locked"
    s, token = login_page(hard, headers=h)
    assert post_login(hard, s, token, "olga", PASSWORD, headers=h).status_code == 429
    assert len(re.findall(r"failed login for 'olga' from 10\.1\.0\.1", log_text(hard))) <= 5
    # 2 scrypt hashes of 128 MiB at most at once: the peak stays far below 100 x 128 MiB.
    assert int(st["VmHWM"].split()[0]) < 600 * 1024, st["VmHWM"]


def test_one_user_cannot_lock_out_the_office(hard):
    """Failures are keyed by user+address: olga's typos lock olga at that address, not ivan behind the
    same NAT; the per-address cap (12) still stops one client guessing across many names."""
    h = via("10.2.0.1")
    for _ in range(5):
        s, t = login_page(hard, headers=h)
        assert post_login(hard, s, t, "olga", "not it at all", headers=h).status_code == 401
    s, t = login_page(hard, headers=h)
    assert post_login(hard, s, t, "olga", PASSWORD, headers=h).status_code == 429
    s, t = login_page(hard, headers=h)
    assert post_login(hard, s, t, "ivan", PASSWORD, headers=h).status_code == 303, "ivan is not locked out"
    # Guessing other names from that address: 5 (olga) + 7 more failures reach the address cap of 12.
    for i in range(7):
        s, t = login_page(hard, headers=h)
        assert post_login(hard, s, t, f"name{i}", "guess", headers=h).status_code == 401
    s, t = login_page(hard, headers=h)
    assert post_login(hard, s, t, "someone", "guess", headers=h).status_code == 429
    s, t = login_page(hard, headers=h)
    assert post_login(hard, s, t, "ivan", PASSWORD, headers=h).status_code == 429, "the address is capped"
    other = via("10.2.0.2")
    s, t = login_page(hard, headers=other)
    assert post_login(hard, s, t, "olga", PASSWORD, headers=other).status_code == 303


def test_scrypt_cost_and_rehash_at_login(hard):
    """New hashes use N=2^17, r=8, p=1; a stored N=2^14 hash still logs in and is rewritten."""
    db = db_of(hard)
    (stored,) = db.execute("SELECT password FROM web_users WHERE name = 'ivan'").fetchone()
    assert stored.startswith("scrypt$131072$8$1$")
    salt = b"0123456789abcdef"
    dk = hashlib.scrypt(b"old cost password", salt=salt, n=2 ** 14, r=8, p=1, dklen=32)
    old = f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"
    with db:
        db.execute("UPDATE web_users SET password = ? WHERE name = 'ivan'", (old,))
    h = via("10.3.0.1")
    s, t = login_page(hard, headers=h)
    assert post_login(hard, s, t, "ivan", "old cost password", headers=h).status_code == 303
    (new,) = db.execute("SELECT password FROM web_users WHERE name = 'ivan'").fetchone()
    assert new.startswith("scrypt$131072$8$1$") and new != old
    s, t = login_page(hard, headers=h)
    assert post_login(hard, s, t, "ivan", "old cost password", headers=h).status_code == 303
    assert run_user_cmd(hard.cfg, "passwd", "ivan", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0


# ---- sessions -----------------------------------------------------------------------------------

def test_anonymous_visitors_create_no_sessions_and_sessions_have_an_absolute_lifetime(hard):
    db = db_of(hard)
    before = db.execute("SELECT count(*) FROM web_sessions").fetchone()[0]
    for _ in range(30):
        requests.get(hard.url + "/login", timeout=10)
    assert db.execute("SELECT count(*) FROM web_sessions").fetchone()[0] == before, \
        "page loads of anonymous visitors must not add session rows"
    h = via("10.4.0.1")
    s, t = login_page(hard, headers=h)
    assert post_login(hard, s, t, "olga", PASSWORD, headers=h).status_code == 303
    assert s.get(hard.url + "/", allow_redirects=False, timeout=10).status_code == 200
    # Active all along, but logged in longer ago than session_max_hours (168): the login has ended.
    sid_hash = hashlib.sha256(s.cookies["ak_session"].encode()).hexdigest()
    with db:
        db.execute("UPDATE web_sessions SET created = created - 169 * 3600 WHERE id_hash = ?", (sid_hash,))
    r = s.get(hard.url + "/", allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303) and "/login" in r.headers["Location"]
    assert db.execute("SELECT count(*) FROM web_sessions WHERE id_hash = ?", (sid_hash,)).fetchone()[0] == 0


def test_failure_rows_and_expired_sessions_are_pruned(tmp_path):
    srv = start(tmp_path, "login_lockout_seconds = 1\nsession_hours = 1\n")
    try:
        db = db_of(srv)
        for name in ("ghost1", "ghost2"):
            s, t = login_page(srv)
            assert post_login(srv, s, t, name, "nope nope").status_code == 401
        with db:
            db.execute("INSERT INTO web_sessions (id_hash, user, csrf, created, seen) "
                       "VALUES ('old', 'olga', 'x', 0, 0)")
        time.sleep(2.5)
        s, t = login_page(srv)
        assert post_login(srv, s, t, "olga", PASSWORD).status_code == 303
        keys = [k for (k,) in db.execute("SELECT key FROM web_login_failures")]
        assert not any("ghost" in k for k in keys), keys
        assert db.execute("SELECT count(*) FROM web_sessions WHERE id_hash = 'old'").fetchone()[0] == 0
    finally:
        srv.stop()


def test_form_after_the_session_ended_says_so_and_comes_back(hard):
    """`user passwd` ends olga's session; her next form post is not "the form is stale" (403) but a
    redirect to the login page saying the session ended, with the page to come back to."""
    h = via("10.5.0.1")
    s, t = login_page(hard, headers=h)
    assert post_login(hard, s, t, "olga", PASSWORD, headers=h).status_code == 303
    home = s.get(hard.url + "/", timeout=10)
    assert run_user_cmd(hard.cfg, "passwd", "olga", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    r = s.post(hard.url + "/logout", data={"csrf": csrf_of(home.text)}, headers={"Referer": hard.url + "/"},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.status_code
    assert r.headers["Location"] == "/login?m=login.ended&next=%2F%23ak-restore"
    page = s.get(hard.url + r.headers["Location"], timeout=10)
    assert "Сеанс завершён" in page.text and 'name="next" value="/#ak-restore"' in page.text
    r = post_login(hard, s, csrf_of(page.text), "olga", PASSWORD, headers=h, next_="/#ak-restore")
    assert r.status_code == 303 and r.headers["Location"] == "/#ak-restore"
    # Scripts (JSON / X-CSRF-Token) get a 401 with the same message instead of a redirect.
    r = requests.post(hard.url + "/logout", headers={"X-CSRF-Token": "x", "Accept": "application/json"},
                      timeout=10)
    assert r.status_code == 401 and "Сеанс завершён" in r.json()["error"]


# ---- what the server refuses before the app -----------------------------------------------------

def test_redirects_ignore_the_clients_host(hard):
    for hdr in ({"X-Forwarded-Host": "evil.example"}, {"Host": "evil.example"}):
        r = requests.get(hard.url + "/", headers=hdr, allow_redirects=False, timeout=10)
        assert r.status_code in (302, 303)
        assert r.headers["Location"] == "/login?next=%2F", r.headers["Location"]


def test_malformed_bodies_get_400_without_traceback(hard):
    bad = b'--X\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n\xff\xfe\xc3\r\n--X--\r\n'
    mp = {"Content-Type": "multipart/form-data; boundary=X"}
    r = requests.post(hard.url + "/login", data=bad, headers=mp, timeout=10)
    assert r.status_code == 400
    h = via("10.6.0.1")
    s, t = login_page(hard, headers=h)
    assert post_login(hard, s, t, "olga", PASSWORD, headers=h).status_code == 303
    for body in (bad, b'--X\r\nContent-Disposition: form-data; name="csrf"\r\n\r\nabc'):
        r = s.post(hard.url + "/logout", data=body, headers=mp, allow_redirects=False, timeout=10)
        assert r.status_code == 400, r.status_code
    assert s.get(hard.url + "/", allow_redirects=False, timeout=10).status_code == 200
    assert "Traceback" not in log_text(hard) + hard.output()


def _raw_post(srv, path: str, length: int, send: int, extra: str = "") -> tuple:
    """Send the head of a POST of LENGTH bytes and up to SEND body bytes; return (status line, seconds)."""
    t0 = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sock.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=X\r\n"
                  f"Content-Length: {length}\r\n{extra}\r\n").encode())
    chunk = b"x" * 65536
    sock.setblocking(False)
    sent, answer = 0, b""
    while time.monotonic() - t0 < 10:
        try:
            answer += sock.recv(4096)
            if b"\r\n" in answer or not answer:
                break
        except BlockingIOError:
            pass
        except ConnectionError:
            break
        if sent < send:
            try:
                sent += sock.send(chunk)
            except (BlockingIOError, ConnectionError):
                time.sleep(0.005)
        else:
            time.sleep(0.005)
    sock.close()
    return answer.split(b"\r\n")[0].decode(errors="replace"), time.monotonic() - t0


def test_oversized_anonymous_post_gets_413_unread(hard):
    """50 MB to /login from a client that is not logged in: 413 in under a second; the body is neither
    read (the process reads < 5 MB) nor written anywhere (it writes < 1 MB)."""
    pid = hard.proc.pid
    before = proc_io(pid)
    status, took = _raw_post(hard, "/login", 50 * 1024 * 1024, 50 * 1024 * 1024)
    after = proc_io(pid)
    print(f"\n50 MB anonymous POST: {status!r} in {took:.3f} s; read {after['rchar'] - before['rchar']} B, "
          f"wrote {after['wchar'] - before['wchar']} B")
    assert status.startswith("HTTP/1.1 413"), status
    assert took < 1.0
    assert after["rchar"] - before["rchar"] < 5 * 1024 * 1024
    assert after["wchar"] - before["wchar"] < 1024 * 1024
    assert requests.get(hard.url + "/healthz", timeout=10).status_code == 200


def test_header_limit_body_limit_and_slow_clients(tmp_path):
    srv = start(tmp_path, "max_body_mb = 1\nmax_header_kb = 8\nread_timeout_seconds = 2\n")
    try:
        r = requests.get(srv.url + "/login", headers={"X-Big": "a" * 20000}, timeout=10)
        assert r.status_code in (413, 431), r.status_code
        # A logged-in user's body above max_body_mb: 413 from the server before the app.
        s, t = login_page(srv)
        assert post_login(srv, s, t, "olga", PASSWORD).status_code == 303
        cookie = f"Cookie: ak_session={s.cookies['ak_session']}\r\n"
        status, _ = _raw_post(srv, "/logout", 2 * 1024 * 1024, 2 * 1024 * 1024, extra=cookie)
        assert status.startswith("HTTP/1.1 413"), status
        # A client that never finishes its request head is dropped after read_timeout_seconds.
        t0 = time.monotonic()
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        sock.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n")
        try:
            while sock.recv(4096):
                pass
        except ConnectionError:
            pass
        took = time.monotonic() - t0
        sock.close()
        assert 1.5 < took < 8, took
        assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200
    finally:
        srv.stop()


# ---- TLS ----------------------------------------------------------------------------------------

def make_cert(d):
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_pages_in_chromium_with_hsts_and_secure_cookies(tmp_path):
    from selenium.webdriver.common.by import By

    from testbed.browser import login, new_browser, quit_browser
    cert, key = make_cert(tmp_path)
    srv = start(tmp_path / "site", f"tls_cert = {cert}\ntls_key = {key}\n")
    drv = None
    try:
        r = requests.get(srv.url + "/login", timeout=10, verify=str(cert))
        assert r.status_code == 200 and r.headers["Strict-Transport-Security"].startswith("max-age=")
        assert "Secure" in r.headers["Set-Cookie"]
        srv.ca = str(cert)
        s, t = login_page(srv)
        r = post_login(srv, s, t, "olga", PASSWORD)
        assert r.status_code == 303 and "Secure" in r.headers["Set-Cookie"]
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{srv.port}/login", timeout=5)
        drv = new_browser(extra_args=("--ignore-certificate-errors",))
        login(drv, srv.url, "olga", PASSWORD)
        assert drv.current_url.startswith("https://")
        assert drv.find_element(By.ID, "current-user").text == "olga"
    finally:
        if drv is not None:
            quit_browser(drv)
        srv.stop()


def test_doctor_warns_about_plain_http(tmp_path):
    from testbed.kitcli import kit
    cert, key = make_cert(tmp_path)
    r = kit(write_config(tmp_path / "a", "listen = 0.0.0.0\n"), "doctor")
    assert "WARNING: plain HTTP on 0.0.0.0:8080" in r.stdout
    r = kit(write_config(tmp_path / "b", f"tls_cert = {cert}\ntls_key = {key}\n"), "doctor")
    assert re.search(r"ok +web TLS: HTTPS on", r.stdout), r.stdout
    r = kit(write_config(tmp_path / "c", f"tls_cert = {cert}\ntls_key = {tmp_path}/missing.key\n"), "doctor")
    assert re.search(r"FAILED +web TLS: \[web\] tls_cert / tls_key", r.stdout), r.stdout


def test_browser_keeps_typed_data_across_an_ended_session(tmp_path):
    """In Chromium: a form sent after the session ended leads to the login page ("session ended"),
    then back to the same page with what was typed filled in again."""
    from selenium.webdriver.common.by import By

    from testbed.browser import login, new_browser, quit_browser, wait_for
    srv = start(tmp_path, "\n[dialer]\n")
    drv = new_browser()
    try:
        login(drv, srv.url, "olga", PASSWORD)
        drv.get(srv.url + "/dialer/c/1")
        drv.find_element(By.ID, "name").clear()
        drv.find_element(By.ID, "name").send_keys("Водители, перезвонить")
        drv.find_element(By.ID, "connect_to").send_keys("Local/100@from-internal")
        assert run_user_cmd(srv.cfg, "passwd", "olga", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
        drv.find_element(By.ID, "connect_to").submit()
        wait_for(lambda: drv.find_elements(By.ID, "notice"), what="the login page")
        assert "Сеанс завершён" in drv.find_element(By.ID, "notice").text
        login_form_user = drv.find_element(By.ID, "user")
        login_form_user.send_keys("olga")
        drv.find_element(By.ID, "password").send_keys(PASSWORD)
        drv.find_element(By.ID, "submit").click()
        wait_for(lambda: drv.find_elements(By.ID, "current-user"), what="logged in again")
        assert drv.current_url == srv.url + "/dialer/c/1", drv.current_url
        assert drv.find_element(By.ID, "name").get_attribute("value") == "Водители, перезвонить"
        assert drv.find_element(By.ID, "connect_to").get_attribute("value") == "Local/100@from-internal"
        assert drv.find_element(By.ID, "settings-form").get_attribute("data-restored") == "1"
    finally:
        quit_browser(drv)
        srv.stop()
