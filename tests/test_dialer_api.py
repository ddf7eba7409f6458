"""The autodialer's JSON API and its tokens page, against a real `asterisk-kit web` over real sockets
(Chromium for the page): tokens shown once, stored hashed, scoped and revocable; refusals; numbers
added with a per-item report; results read by change cursor without loss or repeat; the rate limit;
and the curl examples of docs/dialer-api.md run as written."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By

from asterisk_kit import storage
from asterisk_kit.config import load
from asterisk_kit.dialer import store, tokens
from asterisk_kit.dialer.numbers import Entry
from testbed.browser import login, screenshots_fit, wait_for
from testbed.webserver import WebServer
from tests.test_web import csrf_of, run_user_cmd, write_config

PASSWORD = "api pass 12345"
API = "/api/dialer/v1"
DOC = Path(__file__).resolve().parent.parent / "docs" / "dialer-api.md"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("dialer-api")
    cfg_path = write_config(d, "")
    with open(cfg_path, "a") as f:
        f.write("[dialer]\n")
    for name in ("olga", "ivan"):           # olga is the first account: the admin
        assert run_user_cmd(cfg_path, "add", name, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    cfg = load(str(cfg_path))
    conn = store.connect(cfg)
    srv = WebServer(cfg_path).start()
    srv.cfg_path, srv.conn, srv.secrets = cfg_path, conn, []
    srv.c2 = store.create_campaign(conn, "Second")
    srv.c3 = store.create_campaign(conn, "Results")
    yield srv
    assert srv.stop() in (0, -15), srv.output()


def session(site, user="olga"):
    s = requests.Session()
    tok = csrf_of(s.get(site.url + "/login", timeout=10).text)
    r = s.post(site.url + "/login", data={"csrf": tok, "user": user, "password": PASSWORD}, timeout=60)
    assert r.status_code == 200 and "current-user" in r.text
    return s


def new_token(site, s, name, scope="all"):
    """A token made through the page over HTTP, as the page shows it (once)."""
    tok = csrf_of(s.get(site.url + "/dialer/tokens", timeout=10).text)
    r = s.post(site.url + "/dialer/tokens", data={"csrf": tok, "name": name, "scope": str(scope), "expires": ""},
               timeout=10)
    m = re.search(r'id="new-token-value"[^>]*value="([^"]+)"', r.text)
    assert r.status_code == 200 and m, r.text[:500]
    site.secrets.append(m.group(1))
    return m.group(1)


def bearer(secret):
    return {"Authorization": "Bearer " + secret}


def phones(site, campaign_id):
    return {r[0]: (r[1], r[2]) for r in site.conn.execute(
        "SELECT number, digit, comment FROM dialer_phones WHERE campaign_id = ?", (campaign_id,))}


def assert_no_secret_kept(site):
    """Neither the store (database and WAL) nor the logs hold any token made in this module, only hashes."""
    data = site.cfg_path.parent / "data"
    blobs = [p.read_bytes() for p in data.glob("asterisk-kit.sqlite*")]
    logs = [p.read_bytes() for p in (site.cfg_path.parent / "log").glob("*.log")] + [site.output().encode()]
    hashes = {r[0] for r in site.conn.execute("SELECT hash FROM dialer_api_tokens")}
    assert site.secrets
    for secret in site.secrets:
        assert hashlib.sha256(secret.encode()).hexdigest() in hashes
        for b in blobs + logs:
            assert secret.encode() not in b and secret[tokens.PREFIX_LEN:].encode() not in b


@pytest.mark.browser
def test_token_page_shows_the_token_once_and_it_works(site, browser):
    drv = browser
    login(drv, site.url, "olga", PASSWORD)
    drv.get(site.url + "/dialer/tokens")
    assert drv.find_element(By.CSS_SELECTOR, "#dialer-nav a.active").get_attribute("href").endswith("/dialer/tokens")
    # A bad form: the error at the top links to its field, the typed name comes back.
    drv.find_element(By.ID, "token-name").send_keys("   ")
    drv.execute_script("arguments[0].value = '2020-01-01'", drv.find_element(By.ID, "token-expires"))
    drv.find_element(By.ID, "token-create").click()
    wait_for(lambda: drv.find_elements(By.ID, "form-errors"), what="the form errors")
    assert {li.get_attribute("data-field") for li in drv.find_elements(By.CSS_SELECTOR, "#form-errors li")} == {
        "token-name", "token-expires"}
    assert not site.conn.execute("SELECT count(*) FROM dialer_api_tokens").fetchone()[0]

    assert drv.find_element(By.ID, "token-expires").get_attribute("value") == "2020-01-01"     # typed input kept
    drv.execute_script("arguments[0].value = ''", drv.find_element(By.ID, "token-expires"))
    drv.find_element(By.ID, "token-name").clear()
    drv.find_element(By.ID, "token-name").send_keys("CRM Битрикс")
    drv.find_element(By.ID, "token-create").click()
    wait_for(lambda: drv.find_elements(By.ID, "new-token-value"), what="the new token")
    secret = drv.find_element(By.ID, "new-token-value").get_attribute("value")
    site.secrets.append(secret)
    assert re.fullmatch(r"akd_[A-Za-z0-9_-]{43}", secret)
    assert "CRM Битрикс" in drv.find_element(By.ID, "notice").text
    row = drv.find_element(By.CSS_SELECTOR, "#token-table tr[data-state=active]")
    assert row.find_element(By.CSS_SELECTOR, ".prefix").text == secret[:tokens.PREFIX_LEN] + "…"
    assert row.find_element(By.CSS_SELECTOR, ".last-used").text == "не использовался"

    r = requests.get(site.url + API + "/campaigns", headers=bearer(secret), timeout=10)
    assert r.status_code == 200 and {c["id"] for c in r.json()["campaigns"]} >= {1, site.c2, site.c3}
    # Shown once: a reload shows only the prefix, now with its last use.
    drv.get(site.url + "/dialer/tokens")
    assert not drv.find_elements(By.ID, "new-token-value") and secret not in drv.page_source
    assert drv.find_element(By.CSS_SELECTOR, "#token-table .last-used").text != "не использовался"

    # Scoped to a campaign from the page's list.
    drv.find_element(By.ID, "token-name").send_keys("only second")
    drv.find_element(By.CSS_SELECTOR, f"#token-scope option[value='{site.c2}']").click()
    drv.find_element(By.ID, "token-create").click()
    wait_for(lambda: drv.find_elements(By.ID, "new-token-value"), what="the scoped token")
    scoped = drv.find_element(By.ID, "new-token-value").get_attribute("value")
    site.secrets.append(scoped)
    r = requests.get(site.url + API + "/campaigns", headers=bearer(scoped), timeout=10)
    assert [c["id"] for c in r.json()["campaigns"]] == [site.c2]

    assert screenshots_fit(drv, site.url + "/dialer/tokens", "dialer-tokens-ru") == {}
    drv.find_element(By.ID, "lang-switch").click()
    wait_for(lambda: drv.find_element(By.ID, "token-create").text == "Create token", what="English")
    assert screenshots_fit(drv, site.url + "/dialer/tokens", "dialer-tokens-en") == {}

    # Revoke (with its confirmation): refused by the API at once.
    row = [tr for tr in drv.find_elements(By.CSS_SELECTOR, "#token-table tr[data-token]")
           if tr.find_element(By.CSS_SELECTOR, ".name").text == "only second"][0]
    row.find_element(By.CSS_SELECTOR, "button.revoke").click()
    wait_for(lambda: drv.switch_to.alert, what="the confirmation")
    drv.switch_to.alert.accept()
    wait_for(lambda: "revoked" in drv.find_element(By.ID, "notice").text, what="revoked notice")
    assert drv.find_elements(By.CSS_SELECTOR, "#token-table tr[data-state=revoked]")
    r = requests.get(site.url + API + "/campaigns", headers=bearer(scoped), timeout=10)
    assert r.status_code == 401
    assert requests.get(site.url + API + "/campaigns", headers=bearer(secret), timeout=10).status_code == 200
    assert_no_secret_kept(site)


def test_refusals_scope_owners_and_csrf(site):
    olga, ivan = session(site), session(site, "ivan")
    everything = new_token(site, olga, "all campaigns")
    only2 = new_token(site, ivan, "ivan second", site.c2)
    url = site.url + API
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic b2xnYTpwYXNz"},
                    bearer("akd_" + "x" * 43), bearer(everything + "x"), bearer(everything[:-1])):
        r = requests.get(url + "/campaigns", headers=headers, timeout=10)
        assert r.status_code == 401 and r.json()["status"] == 401 and r.json()["error"], headers
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        r = requests.post(url + "/campaigns/1/numbers", headers=headers, json=["89990000001"], timeout=10)
        assert r.status_code == 401, headers
    # Outside the token's scope: 403, nothing stored.
    for r in (requests.get(url + "/campaigns/1/results", headers=bearer(only2), timeout=10),
              requests.post(url + "/campaigns/1/numbers", headers=bearer(only2), json=["89990000002"], timeout=10)):
        assert r.status_code == 403 and "campaign" in r.json()["error"]
    assert requests.get(url + "/campaigns/999/results", headers=bearer(everything), timeout=10).status_code == 404
    # Expired: refused.
    _, old = tokens.create(site.conn, "olga", "expired", None, time.time() - 1)
    site.secrets.append(old)
    assert requests.get(url + "/campaigns", headers=bearer(old), timeout=10).status_code == 401

    # The login cookie is no way in: without the page's CSRF token a POST is refused by the CSRF check,
    # and with it the API still wants a Bearer token.
    r = olga.post(url + "/campaigns/1/numbers", json=["89990000003"], timeout=10)
    assert r.status_code == 403
    tok = csrf_of(olga.get(site.url + "/dialer/tokens", timeout=10).text)
    r = olga.post(url + "/campaigns/1/numbers", json=["89990000003"], headers={"X-CSRF-Token": tok}, timeout=10)
    assert r.status_code == 401
    assert olga.get(url + "/campaigns", timeout=10).status_code == 401
    assert "89990000003" not in phones(site, 1)

    # Owners: ivan sees only his tokens and cannot revoke olga's; olga (admin) sees and revokes his.
    page = ivan.get(site.url + "/dialer/tokens", timeout=10).text
    assert "ivan second" in page and "all campaigns" not in page
    olga_id = site.conn.execute("SELECT id FROM dialer_api_tokens WHERE name = 'all campaigns'").fetchone()[0]
    ivan_id = site.conn.execute("SELECT id FROM dialer_api_tokens WHERE name = 'ivan second'").fetchone()[0]
    r = ivan.post(f"{site.url}/dialer/tokens/{olga_id}/revoke", data={"csrf": csrf_of(page)}, timeout=10)
    assert r.status_code == 403
    assert requests.get(url + "/campaigns", headers=bearer(everything), timeout=10).status_code == 200
    page = olga.get(site.url + "/dialer/tokens", timeout=10).text
    assert "ivan second" in page
    r = olga.post(f"{site.url}/dialer/tokens/{ivan_id}/revoke", data={"csrf": csrf_of(page)}, timeout=10)
    assert r.status_code == 200 and r.url.endswith("/dialer/tokens")
    assert requests.get(url + "/campaigns", headers=bearer(only2), timeout=10).status_code == 401
    # Every call is logged with the token's prefix, never the token.
    log = "".join(p.read_text() for p in (site.cfg_path.parent / "log").glob("web-*.log"))
    assert f"GET /api/dialer/v1/campaigns -> 200 (token {everything[:tokens.PREFIX_LEN]}… 'all campaigns' of olga" \
        in log
    assert_no_secret_kept(site)


def test_add_numbers_reports_each_item_and_refuses_injection(site):
    secret = new_token(site, session(site), "numbers", site.c2)
    url = f"{site.url}{API}/campaigns/{site.c2}/numbers"
    items = ["89990000101", {"number": "+7 (999) 000-01-02", "digit": "1", "comment": "Иванов"},
             {"number": "89990000103", "dtmf": 2}, "12345", "89990000101\nApplication: System",
             {"number": "89990000104", "digit": "1\nSetvar: x=1"}, {"number": "89990000105;"},
             {"number": "89990000106", "digit": "#"}, {"number": "8999000010６"}, ["89990000107"], None,
             {"number": 89990000108}, {"number": "89990000109", "comment": "x" * 201},
             {"number": "89990000110", "comment": "ok\r\nChannel: evil"}, "89990000101"]
    r = requests.post(url, headers=bearer(secret), json={"numbers": items}, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    status = {x["index"]: x["status"] for x in body["items"]}
    assert [x["index"] for x in body["items"]] == list(range(15))
    assert {i for i, s in status.items() if s == "added"} == {0, 1, 2, 11, 13, 14}     # 0 and 14: one number
    assert {i for i, s in status.items() if s == "rejected"} == {3, 4, 5, 6, 7, 8, 9, 10, 12}
    reasons = {x["index"]: x["reason"] for x in body["items"] if x["status"] == "rejected"}
    assert reasons == {3: "number.pattern", 4: "number.chars", 5: "digit.bad", 6: "number.chars", 7: "digit.bad",
                       8: "number.chars", 9: "item.bad", 10: "item.bad", 12: "comment.long"}
    assert (body["added"], body["updated"], body["rejected"]) == (5, 0, 9)
    want = {"89990000101": ("", ""), "89990000102": ("1", "Иванов"), "89990000103": ("2", ""),
            "89990000108": ("", ""), "89990000110": ("", "ok Channel: evil")}
    assert phones(site, site.c2) == want
    # The same request again: updates, never a second row.
    again = requests.post(url, headers=bearer(secret), json={"numbers": items}, timeout=10).json()
    assert (again["added"], again["updated"], again["rejected"]) == (0, 5, 9)
    assert phones(site, site.c2) == want
    # A plain list, in a body over the 16 KB a client without a login may send: a valid token may.
    big = [{"number": f"8998{i:07d}", "comment": "client"} for i in range(1000)]
    assert len(json.dumps(big)) > 16 * 1024
    r = requests.post(url, headers=bearer(secret), data=json.dumps(big), timeout=30)
    assert r.status_code == 200 and r.json()["added"] == 1000, r.text[:300]
    assert len(phones(site, site.c2)) == 1005
    # Refused as a whole, nothing stored: too many items, broken JSON, deep nesting, not a list, no token.
    for data, code in ((json.dumps(big + ["89990000111"]), 413), ('{"numbers": [', 400), ("[" * 100000, 400),
                       ('{"numbers": "89990000111"}', 400), (b"\xff\xfe", 400)):
        r = requests.post(url, headers=bearer(secret), data=data, timeout=30)
        assert r.status_code == code and r.json()["error"], (data[:20], r.text[:200])
    r = requests.post(url, data=json.dumps(big), timeout=30)
    assert r.status_code == 413 and "not logged in" in r.text          # refused before the app
    assert len(phones(site, site.c2)) == 1005


def test_results_by_cursor_while_rows_change_lose_nothing_and_repeat_nothing(site):
    """300 call rows created in one statement and changed in bulk (the runner's own statements, many rows
    with one timestamp) while a client pages through with limit=7: cursors only grow, and the client's
    latest copy of every row equals the store once it catches up."""
    c, cid = site.conn, site.c3
    secret = new_token(site, session(site), "results", cid)
    store.upsert_phones(c, [Entry(f"8999100{i:04d}", "", f"n{i}") for i in range(300)], cid)
    run_id = store.create_run(c, "manual", "2026-12-01", campaign_id=cid, settings={})
    numbers = [f"8999100{i:04d}" for i in range(300)]
    url = f"{site.url}{API}/campaigns/{cid}/results"

    def writer():
        w = store.connect(load(str(site.cfg_path)))
        for k in range(0, 300, 50):
            batch, now = numbers[k:k + 50], time.time()
            with storage.transaction(w):
                w.executemany("UPDATE dialer_calls SET state = 'spooled', spooled = ?, batch = ?, attempts = ?, "
                              "next_at = NULL WHERE run_id = ? AND number = ? AND state = 'pending'",
                              [(now, k, 1, run_id, n) for n in batch])
            for n in batch[:10]:
                store.record_event(w, run_id, n, dialstatus="ANSWER", answered=True, pressed="1")
            with storage.transaction(w):
                w.executemany("UPDATE dialer_calls SET state = 'done', result = ?, finished = ? "
                              "WHERE run_id = ? AND number = ?",
                              [("answered" if i % 3 else "busy", now, run_id, n) for i, n in enumerate(batch)])
        w.close()

    seen, latest, cursor = [], {}, 0
    t = threading.Thread(target=writer)
    t.start()
    while True:
        r = requests.get(url, params={"since": cursor, "limit": 13}, headers=bearer(secret), timeout=10)
        if r.status_code == 429:
            time.sleep(float(r.headers["Retry-After"]))
            continue
        assert r.status_code == 200, r.text
        body = r.json()
        for x in body["results"]:
            seen.append(x["cursor"])
            latest[(x["run_id"], x["number"])] = x
        assert body["next"] == (body["results"][-1]["cursor"] if body["results"] else cursor)
        cursor = body["next"]
        if not body["more"] and not t.is_alive():
            break
        if not body["more"]:
            time.sleep(0.3)      # polling pace, within the rate limit
    t.join()
    assert seen == sorted(set(seen)), "a change came twice or out of order"
    db = {(r["run_id"], r["number"]): r for r in c.execute("SELECT * FROM dialer_calls WHERE run_id = ?", (run_id,))}
    assert set(latest) == set(db)
    for key, row in db.items():
        got = latest[key]
        assert got["cursor"] == row["changed"] and got["state"] == "done" and got["final"]
        assert got["outcome"] == row["result"] and got["attempts"] == 1
        assert got["comment"] == f"n{int(key[1][-4:])}"
    sample = latest[(run_id, numbers[0])]
    assert sample["digit_pressed"] == "1" and sample["opted_out"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", sample["first_call"])
    assert sample["first_call"] == sample["last_call"] and sample["finished"]
    # Many rows share one timestamp, none is lost to it.
    assert len({r["finished"] for r in db.values()}) <= 6
    # Caught up: nothing more; a later change comes back once with a higher cursor.
    assert requests.get(url, params={"since": cursor}, headers=bearer(secret), timeout=10).json()["results"] == []
    store.withdraw_pending(c, run_id)       # no pending row: changes nothing
    c.execute("UPDATE dialer_calls SET optout = 1 WHERE run_id = ? AND number = ?", (run_id, numbers[5]))
    body = requests.get(url, params={"since": cursor}, headers=bearer(secret), timeout=10).json()
    assert [(x["number"], x["opted_out"]) for x in body["results"]] == [(numbers[5], True)]
    assert body["results"][0]["cursor"] > cursor
    for bad in ({"since": "-1"}, {"since": "x"}, {"limit": "0"}, {"limit": "1001"}):
        assert requests.get(url, params=bad, headers=bearer(secret), timeout=10).status_code == 400


def test_rate_limit_answers_429_with_retry_after(site):
    s = session(site)
    busy, other = new_token(site, s, "busy"), new_token(site, s, "other")
    codes, retry = [], None
    with requests.Session() as http:
        for _ in range(130):
            r = http.get(site.url + API + "/campaigns", headers=bearer(busy), timeout=10)
            codes.append(r.status_code)
            if r.status_code == 429:
                retry = r.headers.get("Retry-After")
                assert "rate limit" in r.json()["error"]
    assert codes.count(200) >= 120 and 429 in codes and set(codes) == {200, 429}, codes
    assert retry and 1 <= int(retry) <= 60
    # Per token: another token of the same user is not limited.
    assert requests.get(site.url + API + "/campaigns", headers=bearer(other), timeout=10).status_code == 200


def _shape(v):
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_shape(v[0])] if v else []
    return type(v).__name__ if v is not None else None


def _same_shape(doc, got, where=""):
    """Every documented key is in the answer with a value of the same JSON type (null: any)."""
    if isinstance(doc, dict):
        assert isinstance(got, dict), where
        assert set(doc) == set(got), (where, sorted(doc), sorted(got))
        for k in doc:
            _same_shape(doc[k], got[k], f"{where}.{k}")
    elif isinstance(doc, list):
        assert isinstance(got, list) and got, where
        _same_shape(doc[0], got[0], where + "[0]")
    elif doc is not None and got is not None:
        assert type(doc) is type(got), (where, doc, got)


def test_docs_curl_examples_run_as_written(site):
    """Each ```sh curl example of docs/dialer-api.md runs in bash against the server and answers what the
    ```json block after it shows (same keys and types; the same status for errors)."""
    text = DOC.read_text()
    pairs = re.findall(r"```sh\n(curl.*?)```\s*```json\n(.*?)```", text, re.S)
    assert len(pairs) >= 4
    secret = new_token(site, session(site), "docs")
    # A finished call in campaign 1, so the results example has a row to show.
    c = site.conn
    store.upsert_phones(c, [Entry("89161234567", "1", "Ivanov")], 1)
    run_id = store.create_run(c, "manual", "2026-12-01", campaign_id=1, settings={})
    c.execute("UPDATE dialer_calls SET state = 'done', result = 'answered', spooled = ?, finished = ?, attempts = 1, "
              "pressed = '1' WHERE run_id = ?", (time.time(), time.time(), run_id))
    env = dict(os.environ, KIT_URL=site.url, TOKEN=secret)
    for cmd, answer in pairs:
        out = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, (cmd, out.stderr)
        got, doc = json.loads(out.stdout), json.loads(answer)
        _same_shape(doc, got, cmd.split()[-1])
        if "status" in doc:
            assert got["status"] == doc["status"] and got["error"] == doc["error"]
    assert_no_secret_kept(site)


def test_token_command_line(site):
    """`dialer token create` prints the token once (stdout, for scripts), `list` shows only its prefix,
    `revoke` ends it for the API at once."""
    from testbed.kitcli import kit
    r = kit(site.cfg_path, "dialer", "token", "create", "--user", "ivan", "--name", "from cli", "--campaign",
            str(site.c2), check=True)
    secret = r.stdout.strip()
    site.secrets.append(secret)
    assert re.fullmatch(r"akd_[A-Za-z0-9_-]{43}", secret) and "not shown again" in r.stderr
    got = requests.get(site.url + API + "/campaigns", headers=bearer(secret), timeout=10).json()
    assert [c["id"] for c in got["campaigns"]] == [site.c2]
    listed = kit(site.cfg_path, "dialer", "token", "list", "--user", "ivan", check=True).stdout
    line = [x for x in listed.splitlines() if x.endswith("\tfrom cli")][0]
    assert secret[:tokens.PREFIX_LEN] + "…" in line and secret not in listed and f"campaign {site.c2}" in line
    assert kit(site.cfg_path, "dialer", "token", "create", "--user", "nobody", "--name", "x").returncode == 1
    assert kit(site.cfg_path, "dialer", "token", "create", "--user", "ivan", "--name", "x",
               "--expires", "2020-01-01").returncode == 1
    kit(site.cfg_path, "dialer", "token", "revoke", line.split("\t")[0], check=True)
    assert requests.get(site.url + API + "/campaigns", headers=bearer(secret), timeout=10).status_code == 401
    assert_no_secret_kept(site)
