"""Beeline recordings export: the real client, job and CLI against a fake Beeline portal API and
REAL file servers on loopback (pyftpdlib FTP and FTPS, OpenSSH sshd for SFTP)."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from asterisk_kit import config, storage
from asterisk_kit.beeline import api, remote, render, sync
from asterisk_kit.lock import JobLock
from testbed.fakes.beeline import FakeBeeline
from testbed.ftpservers import FTP_PASSWORD, CuttingProxy, FtpServer, Sshd
from testbed.kitcli import BIN, kit

pytestmark = pytest.mark.timeout(180)

NOSLEEP = lambda s: None  # noqa: E731  (retries in-process without waiting)


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def started():
    items = []
    yield items
    for it in reversed(items):
        it.stop()


@pytest.fixture
def fake(started):
    def make(**kw):
        f = FakeBeeline(**kw).start()
        started.append(f)
        return f
    return make


@pytest.fixture
def ftp(tmp_path, started):
    s = FtpServer(tmp_path / "ftp-root")
    started.append(s)
    return s


@pytest.fixture
def ftps(tmp_path, started):
    s = FtpServer(tmp_path / "ftps-root", tls=True, certdir=tmp_path / "cert")
    started.append(s)
    return s


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    s = Sshd(tmp_path_factory.mktemp("sshd"))
    yield s
    s.stop()


def section(name: str, fake, dest: str, **keys) -> str:
    base = {"token": fake.token, "api_url": fake.url, "destination": dest, "retry_pause": "0.05",
            "request_timeout": "10", "transfer_timeout": "10"}
    base.update({k: str(v) for k, v in keys.items()})
    return f"[beeline:{name}]\n" + "".join(f"{k} = {v}\n" for k, v in base.items() if v is not None)


def write_cfg(tmp_path, *sections: str) -> Path:
    p = tmp_path / "kit.ini"
    p.write_text(f"[general]\ndata_dir = {tmp_path}/data\ntimezone = local\n[log]\ndir = {tmp_path}/log\n"
                 f"[asterisk]\nami_user = x\nami_secret = y\nrun_user =\n" + "".join(sections))
    return p


def load(path: Path):
    return config.load(str(path))


def ftp_section(name, fake, server, **keys):
    if server.tls:
        keys.setdefault("tls_ca_file", server.cert)
    return section(name, fake, server.url(), password=FTP_PASSWORD, **keys)


def sftp_section(name, fake, sshd, remote_dir, tmp_path, port=None, **keys):
    kh = tmp_path / "known_hosts"
    if not kh.exists():
        kh.write_text(sshd.known_hosts_line(port))
    keys.setdefault("known_hosts", kh)
    return section(name, fake, sshd.url(str(remote_dir), port), key_file=sshd.client_key, **keys)


def listing(directory: Path) -> dict:
    return {p.name: p for p in sorted(directory.iterdir())} if directory.exists() else {}


def assert_delivered(fake, directory: Path, ids=None, tz="local", template="") -> None:
    """Exactly one mp3 and one JSON per record, byte-identical audio, JSON as the old script wrote it,
    nothing else (no temp file, no partial file) in the folder."""
    ids = fake.ids() if ids is None else ids
    files = listing(directory)
    assert sorted(files) == sorted([f"{i}.mp3" for i in ids] + [f"{i}.json" for i in ids])
    for i in ids:
        assert files[f"{i}.mp3"].read_bytes() == fake.audio(i), i
        rec = fake.records[i]
        want = render.Renderer(template, tz).render(rec)
        assert files[f"{i}.json"].read_bytes() == want


# ---- the JSON format ---------------------------------------------------------------------------

def test_default_template_reproduces_the_old_format():
    rec = {"id": "185595242", "phone": "79161234567", "direction": "INBOUND", "date": 1622548800000,
           "abonent": {"userId": "x@ip.beeline.ru", "phone": "79001112233", "firstName": "Ёлка"}}
    out = render.Renderer("", "Europe/Moscow").render(rec)
    # The old script: json.dumps(dict, ensure_ascii=False) in this key order, local time, no offset.
    old = json.dumps({"employeeId": "79001112233", "direction": "in", "language": "ru",
                      "respondentNumber": "79161234567", "dateTime": "2021-06-01T15:00:00"}, ensure_ascii=False)
    assert out == old.encode("utf-8")
    rec.update(direction="OUTBOUND")
    assert json.loads(render.Renderer("", "UTC").render(rec))["direction"] == "out"
    rec.update(direction="SOMETHING")
    assert json.loads(render.Renderer("", "UTC").render(rec))["direction"] == ""


@pytest.mark.parametrize("direction", ["inbound", "outbound", "Inbound", "", None])
def test_direction_other_than_the_documented_values_is_empty_as_the_old_script_wrote(direction):
    # The old script compared with == "OUTBOUND" / == "INBOUND"; the customer's consumers have only
    # ever seen "" for anything else, so lower case is not guessed at.
    rec = {"id": "1", "phone": "7", "direction": direction, "date": 0, "abonent": {"phone": "1"}}
    assert json.loads(render.Renderer("", "UTC").render(rec))["direction"] == ""


def test_custom_template_keeps_non_ascii_and_must_be_json(tmp_path):
    t = tmp_path / "t.j2"
    t.write_text('{"who": {{ record.abonent.firstName | json }}, "id": {{ id | json }}}', encoding="utf-8")
    rec = {"id": "5", "phone": "7", "direction": "INBOUND", "date": 0, "abonent": {"phone": "1", "firstName": "Анна"}}
    assert render.Renderer(str(t), "UTC").render(rec) == '{"who": "Анна", "id": "5"}'.encode("utf-8")
    t.write_text('{"who": {{ record.abonent.firstName }}}')   # not quoted: invalid JSON
    with pytest.raises(render.TemplateError, match="invalid JSON"):
        render.Renderer(str(t), "UTC").render(rec)


# ---- the fake follows the notes ----------------------------------------------------------------

def test_fake_api_cursor_paging_and_errors(fake):
    import requests
    f = fake(records=130)
    h = {"X-MPBX-API-AUTH-TOKEN": f.token}
    page = requests.get(f.url + "/records", headers=h, timeout=10).json()
    assert len(page) == 100 and [r["id"] for r in page] == f.ids()[:100]
    nxt = requests.get(f.url + "/records", params={"id": page[-1]["id"]}, headers=h, timeout=10).json()
    assert [r["id"] for r in nxt] == f.ids()[100:]            # exclusive cursor
    r = requests.get(f.url + "/records", headers={"X-MPBX-API-AUTH-TOKEN": "bad"}, timeout=10)
    assert r.status_code == 401 and set(r.json()) == {"errorCode", "description"}
    r = requests.get(f.url + "/v2/records/1/download", headers=h, timeout=10)
    assert r.status_code == 404 and r.json()["errorCode"] == "NotFound"
    r = requests.get(f.url + f"/v2/records/{f.ids()[0]}/download", headers=h, timeout=10)
    assert r.headers["Content-Type"] == "audio/mpeg" and r.content == f.audio(f.ids()[0])


# ---- client ------------------------------------------------------------------------------------

def test_client_orders_ids_numerically_and_pages(fake):
    f = fake(records=250)
    assert any(len(i) == 5 for i in f.ids()) and any(len(i) == 6 for i in f.ids())
    c = api.BeelineClient(f.url, f.token, sleep=NOSLEEP)
    got, cursor = [], ""
    while True:
        page = c.records_after(cursor)
        if not page:
            break
        got += [r["id"] for r in page]
        cursor = page[-1]["id"]
    assert got == f.ids()


def test_client_errors_are_typed(fake, tmp_path):
    f = fake(records=3)
    bad = api.BeelineClient(f.url, "wrong-token", sleep=NOSLEEP)
    with pytest.raises(api.AuthError, match="token refused"):
        bad.records_after("")
    c = api.BeelineClient(f.url, f.token, retries=2, sleep=NOSLEEP)
    with pytest.raises(api.RecordError, match="404"):
        c.record("12345")
    rid = f.ids()[0]
    f.fault("download", rid, "json_error")
    with pytest.raises(api.RecordError, match="instead of audio"):
        c.download(rid, str(tmp_path / "a.mp3"))
    f.fault("download", rid, "json_as_audio")
    with pytest.raises(api.RecordError, match="JSON error body"):
        c.download(rid, str(tmp_path / "a.mp3"))
    f.fault("download", rid, "500", times=3)
    with pytest.raises(api.TransientError, match="500"):
        c.download(rid, str(tmp_path / "a.mp3"))
    f.fault("download", rid, "truncate", times=1)
    f.fault("list", None, "429", times=1)
    assert c.records_after("")                          # 429 retried
    assert c.download(rid, str(tmp_path / "a.mp3")) == f.records[rid]["fileSize"]   # truncation retried
    assert (tmp_path / "a.mp3").read_bytes() == f.audio(rid)
    slow = api.BeelineClient(f.url, f.token, timeout=1, retries=0, sleep=NOSLEEP)
    f.fault("list", None, "slow")
    with pytest.raises(api.TransientError, match="no answer within 1 s"):
        slow.records_after("")


# ---- end to end: N records -> N mp3 + N JSON ----------------------------------------------------

def test_end_to_end_ftp_with_paging_across_pages(tmp_path, fake, ftp):
    f = fake(records=205, size=3000)
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0, r.stderr
    assert "205 record(s) exported" in r.stdout
    assert_delivered(f, ftp.root / "incoming")
    assert f.count("list") == 3                        # 100 + 100 + 5 (short page ends it)
    conn = storage.connect(load(cfgp))
    assert storage.state_get(conn, "beeline:acme", "last_id") == f.ids()[-1]
    # Nothing new: one listing call, nothing sent again.
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0 and "0 record(s) exported" in r.stdout, r.stderr
    assert not list((tmp_path / "data" / "beeline-tmp" / "acme").iterdir())   # temp files removed
    logs = list((tmp_path / "log").glob("beeline-*.log"))
    assert logs and "beeline sync acme: 205 record(s) exported" in logs[0].read_text()


def test_end_to_end_ftps_with_a_custom_template(tmp_path, fake, ftps):
    f = fake(records=7, size=150_000)
    tpl = tmp_path / "acme.json.j2"
    tpl.write_text('{"id": {{ id | json }}, "operator": {{ (record.abonent.firstName ~ " " ~ '
                   'record.abonent.lastName) | json }}, "at": {{ date_time | json }}}\n', encoding="utf-8")
    cfgp = write_cfg(tmp_path, ftp_section("tls", f, ftps, template=tpl, timezone="Asia/Vladivostok"))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0, r.stderr
    assert_delivered(f, ftps.root / "incoming", tz="Asia/Vladivostok", template=str(tpl))
    rid = f.ids()[0]
    got = (ftps.root / "incoming" / f"{rid}.json").read_text(encoding="utf-8")
    when = dt.datetime.fromtimestamp(f.records[rid]["date"] / 1000, dt.timezone(dt.timedelta(hours=10)))
    assert got == (f'{{"id": "{rid}", "operator": "{f.records[rid]["abonent"]["firstName"]} Петрова", '
                   f'"at": "{when:%Y-%m-%dT%H:%M:%S}"}}\n')


@pytest.mark.parametrize("tls", [False, True])
def test_ftp_publish_sends_only_the_commands_that_say_something(tmp_path, started, tls):
    """Binary mode is set once per session, not before every file (ftplib's storbinary sends TYPE I
    each time): a record's two files cost PASV+STOR, SIZE of the temp name, RNFR+RNTO each."""
    ftp = FtpServer(tmp_path / "root", tls=tls, certdir=tmp_path / "cert")
    started.append(ftp)
    c = {"password": FTP_PASSWORD, "transfer_timeout": 10, "tls_ca_file": str(ftp.cert) if tls else ""}
    up = remote.FtpUploader(remote.Destination.parse(ftp.url()), c)
    try:
        up.connect()
        before = len(ftp.commands)
        src = tmp_path / "a.mp3"
        src.write_bytes(b"ID3" + b"x" * 300_000)
        assert up.publish(str(src), "1.mp3", 300_003, maybe_there=False) == 300_003
        assert up.publish(b'{"id": 1}', "1.json", 9, maybe_there=False) == 9
        assert ftp.commands[before:] == ["PASV", "STOR", "SIZE", "RNFR", "RNTO"] * 2
    finally:
        up.close()
    assert (ftp.root / "incoming" / "1.mp3").read_bytes() == src.read_bytes()
    assert (ftp.root / "incoming" / "1.json").read_bytes() == b'{"id": 1}'


def test_ftps_refuses_an_untrusted_certificate(tmp_path, fake, ftps):
    f = fake(records=2)
    cfgp = write_cfg(tmp_path, section("tls", f, ftps.url(), password=FTP_PASSWORD, retries=0))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in r.stderr or "certificate verify failed" in r.stderr
    assert not listing(ftps.root / "incoming")


def test_end_to_end_sftp_and_several_customers(tmp_path, fake, ftp, sshd):
    f1, f2 = fake(records=9, size=120_000), fake(records=4, token="tok-2")
    remote_dir = tmp_path / "sftp-out" / "in"
    cfgp = write_cfg(tmp_path, sftp_section("one", f1, sshd, remote_dir, tmp_path),
                     ftp_section("two", f2, ftp))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0, r.stderr
    assert_delivered(f1, remote_dir)
    assert_delivered(f2, ftp.root / "incoming")
    # --customer runs only that one
    f2.records["999999"] = dict(f2.records[f2.ids()[0]], id="999999")
    f1.records["999999"] = dict(f1.records[f1.ids()[0]], id="999999")
    r = kit(cfgp, "beeline", "sync", "--customer", "two")
    assert r.returncode == 0, r.stderr
    assert "999999.mp3" in listing(ftp.root / "incoming") and "999999.mp3" not in listing(remote_dir)


def test_sftp_unknown_host_key_is_refused(tmp_path, fake, sshd):
    f = fake(records=2)
    other = tmp_path / "other_known_hosts"
    other.write_text(sshd.known_hosts_line().split()[0] + " ssh-ed25519 "
                     "AAAAC3NzaC1lZDI1NTE5AAAAIHRoaXMgaXMgbm90IHRoZSBzZXJ2ZXIncyBrZXkgYXQgYWxsIQ==\n")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    remote_dir = tmp_path / "never"
    for kh, words in ((empty, "not in"), (other, "CHANGED"), (tmp_path / "absent", "does not exist")):
        cfgp = write_cfg(tmp_path, sftp_section("x", f, sshd, remote_dir, tmp_path, known_hosts=kh))
        r = kit(cfgp, "beeline", "sync")
        assert r.returncode == 1, r.stdout
        assert words in r.stderr and "ssh-keyscan -p" in r.stderr, r.stderr
    assert not remote_dir.exists()
    assert f.count("download") == 0          # refused before anything was downloaded


def test_pinning_with_ssh_keyscan_as_documented(tmp_path, fake, sshd):
    f = fake(records=2)
    kh = tmp_path / "pinned"
    scan = subprocess.run(["ssh-keyscan", "-p", str(sshd.port), "-t", "ed25519", "127.0.0.1"],
                          capture_output=True, text=True, timeout=30)
    kh.write_text(scan.stdout)
    remote_dir = tmp_path / "pinned-out"
    cfgp = write_cfg(tmp_path, sftp_section("p", f, sshd, remote_dir, tmp_path, known_hosts=kh))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0, r.stderr
    assert_delivered(f, remote_dir)


# ---- faults ------------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
def test_ftp_connection_dropped_mid_upload_is_retried(tmp_path, fake, started, tls):
    ftp = FtpServer(tmp_path / "root", tls=tls)
    started.append(ftp)
    f = fake(records=6, size=400_000)
    ftp.drop_upload_after(150_000)
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0, r.stderr
    assert ftp.drops == 1
    assert_delivered(f, ftp.root / "incoming")
    assert "failed (attempt 1 of 4)" in (next((tmp_path / "log").glob("beeline-*.log"))).read_text()


def test_sftp_connection_dropped_mid_upload_is_retried(tmp_path, fake, sshd, started):
    proxy = CuttingProxy(sshd.port)
    started.append(proxy)
    f = fake(records=5, size=300_000)
    remote_dir = tmp_path / "sftp-drop"
    proxy.cut_after(450_000)        # past the SSH handshake, inside the second mp3
    cfgp = write_cfg(tmp_path, sftp_section("acme", f, sshd, remote_dir, tmp_path, port=proxy.port))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0, r.stderr
    assert proxy.cuts == 1
    assert_delivered(f, remote_dir)


def test_transient_api_faults_are_retried(tmp_path, fake, ftp):
    f = fake(records=8, size=100_000)
    ids = f.ids()
    f.fault("download", ids[1], "500", times=2)
    f.fault("download", ids[2], "truncate")
    f.fault("record", None, "429")
    f.fault("list", None, "500")
    f.fault("download", ids[3], "drop")
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0, r.stderr
    assert_delivered(f, ftp.root / "incoming")
    assert f.count("download", ids[1]) == 3 and f.count("download", ids[2]) == 2


def test_persistent_api_faults_fail_the_run_with_a_clear_line(tmp_path, fake, ftp):
    f = fake(records=4)
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp, retries=1))
    f.fault("list", None, "500", times=2)
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 1 and "HTTP 500 InternalError" in r.stderr and "FAILED" in r.stderr
    f.fault("list", None, "slow", times=2)
    f.slow_seconds = 3
    r = kit(cfgp.parent / "kit.ini", "beeline", "sync",
            env={"ASTERISK_KIT_BEELINE_ACME_REQUEST_TIMEOUT": "1"})
    assert r.returncode == 1 and "no answer within 1 s" in r.stderr, r.stderr
    r = kit(cfgp, "beeline", "sync", env={"ASTERISK_KIT_BEELINE_ACME_TOKEN": "wrong"})
    assert r.returncode == 1 and "token refused" in r.stderr and "AuthenticationFailed" in r.stderr
    log = next((tmp_path / "log").glob("beeline-*.log")).read_text()
    assert "token refused" in log and "no answer within" in log
    assert not listing(ftp.root / "incoming")
    conn = storage.connect(load(cfgp))
    assert storage.state_get(conn, "beeline:acme", "last_id") is None
    assert not sync.skipped(sync.open_store(load(cfgp)))     # not the records' fault: nothing skipped


def test_a_bad_record_does_not_hold_back_the_others_and_is_retried_then_skipped(tmp_path, fake, ftp):
    f = fake(records=6, size=50_000)
    ids = f.ids()
    f.fault("download", ids[2], "json_error", times=100)
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp, attempts=3))
    r = kit(cfgp, "beeline", "sync")
    # The first run already delivers every other record; the bad one waits on the retry list.
    assert r.returncode == 0, r.stderr
    assert "5 record(s) exported" in r.stdout and "1 failed (on the retry list)" in r.stdout, r.stdout
    assert_delivered(f, ftp.root / "incoming", ids[:2] + ids[3:])   # never an error body as mp3
    conn = storage.connect(load(cfgp))
    assert storage.state_get(conn, "beeline:acme", "last_id") == ids[-1]
    log = next((tmp_path / "log").glob("beeline-*.log")).read_text()
    assert f"record {ids[2]} failed (1 of 3 failed runs" in log and "instead of audio" in log
    r = kit(cfgp, "beeline", "skipped")
    assert f"acme\t{ids[2]}\twaiting for retry\t1 failed run(s)\t" in r.stdout and "instead of audio" in r.stdout
    # Later runs retry it (once per run) until it has failed `attempts` runs, then skip it.
    f.records["999999"] = dict(f.records[ids[0]], id="999999")
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0 and "1 record(s) exported" in r.stdout and "0 skipped" in r.stdout, r.stdout
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout
    assert f.count("download", ids[2]) == 3
    r = kit(cfgp, "beeline", "skipped")
    assert r.returncode == 0 and f"acme\t{ids[2]}\t" in r.stdout and "waiting" not in r.stdout
    r = kit(cfgp, "beeline", "sync")           # skipped stays skipped; nothing is sent twice
    assert r.returncode == 0 and "0 record(s) exported" in r.stdout and f.count("download", ids[2]) == 3
    assert_delivered(f, ftp.root / "incoming", ids[:2] + ids[3:] + ["999999"])


def test_retry_command_queues_skipped_records_again(tmp_path, fake, ftp):
    f = fake(records=5, size=10_000)
    ids = f.ids()
    for rid in (ids[1], ids[3]):
        f.fault("download", rid, "json_error", times=1)
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp, attempts=1))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0 and "2 skipped" in r.stdout, r.stdout
    r = kit(cfgp, "beeline", "retry", "--customer", "acme", "12")
    assert r.returncode == 1 and "not skipped: 12" in r.stderr
    r = kit(cfgp, "beeline", "retry")
    assert r.returncode == 2 and "give record ids or --all" in r.stderr
    r = kit(cfgp, "beeline", "retry", "--customer", "acme", ids[3])
    assert r.returncode == 0 and "1 record(s) queued again" in r.stdout, r.stderr
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0 and "1 record(s) exported" in r.stdout, r.stdout
    assert f.count("record", ids[3]) == 1          # details fetched again: the skip kept no list item
    r = kit(cfgp, "beeline", "retry", "--all")
    assert r.returncode == 0 and f"1 record(s) queued again; the next `asterisk-kit beeline sync` delivers them " \
        f"({ids[1]})" in r.stdout
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0 and "1 record(s) exported" in r.stdout
    assert_delivered(f, ftp.root / "incoming")
    r = kit(cfgp, "beeline", "skipped")
    assert "no skipped records" in r.stdout and "waiting" not in r.stdout


def test_an_api_outage_never_counts_against_records(tmp_path, fake, ftp):
    # ~75 minutes of 5xx on downloads = 5 cron runs; none of them may count as the record's failure.
    f = fake(records=4, size=10_000)
    ids = f.ids()
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp, attempts=2, retries=1))
    f.fault("download", None, "500", times=10_000)
    for _ in range(5):
        r = kit(cfgp, "beeline", "sync")
        assert r.returncode == 1 and "HTTP 500" in r.stderr, r.stderr
    f.faults.clear()
    f.fault("download", ids[1], "429", times=2)      # a 429 outliving its retries: not counted either
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 1 and "429" in r.stderr
    assert not sync.skipped(sync.open_store(load(cfgp)))
    assert not sync.retry_list(sync.open_store(load(cfgp)))
    f.faults.clear()
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0, r.stderr
    assert_delivered(f, ftp.root / "incoming")


def test_an_upload_the_server_refuses_counts_only_when_others_get_through(tmp_path, fake, ftp):
    f = fake(records=5, size=10_000)
    ids = f.ids()
    out = ftp.root / "incoming"
    out.mkdir(parents=True)
    (out / f".{ids[1]}.mp3.part").mkdir()       # STOR of this one file is refused (550)
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp, attempts=2))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0 and "4 record(s) exported" in r.stdout and "1 failed" in r.stdout, r.stdout
    assert sync.retry_list(sync.open_store(load(cfgp)))[0]["attempts"] == 1
    (out / f".{ids[1]}.mp3.part").rmdir()
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0 and "1 record(s) exported" in r.stdout, r.stdout
    assert_delivered(f, out)


def test_missing_record_details_count_as_a_failed_attempt(tmp_path, fake, ftp):
    f = fake(records=3, short_list=True)
    ids = f.ids()
    f.missing.add(ids[0])
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp, attempts=1))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0, r.stderr
    assert "1 skipped" in r.stdout
    assert f.count("record", ids[0]) == 1 and f.count("download", ids[0]) == 0
    assert_delivered(f, ftp.root / "incoming", ids[1:])
    log = next((tmp_path / "log").glob("beeline-*.log")).read_text()
    assert f"record {ids[0]} SKIPPED after 1 failed attempts" in log and "NotFound" in log


@pytest.mark.parametrize("kind", ["ftp", "sftp"])
def test_sigkill_mid_run_then_reruns_deliver_every_record_exactly_once(tmp_path, fake, ftp, sshd, kind):
    f = fake(records=24, size=2_500_000)
    if kind == "ftp":
        sec, out = ftp_section("acme", f, ftp), ftp.root / "incoming"
    else:
        out = tmp_path / "sftp-kill"
        sec = sftp_section("acme", f, sshd, out, tmp_path)
    cfgp = write_cfg(tmp_path, sec)
    kills = 0
    for _ in range(6):
        p = subprocess.Popen([str(BIN), "--config", str(cfgp), "beeline", "sync"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Kill while a partial (temp) file sits on the server: the worst moment for an upload.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and p.poll() is None:
            names = listing(out)
            if any(n.endswith(".part") for n in names) and len(names) > 3 * kills:
                p.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.005)
        p.communicate(timeout=60)
        names = listing(out)
        for n in [n for n in names if not n.endswith(".part")]:   # nothing partial under a final name
            rid, ext = n.split(".")
            assert names[n].read_bytes() == (f.audio(rid) if ext == "mp3" else
                                             render.Renderer("", "local").render(f.records[rid])), n
        # The cursor never runs ahead of what is on the server.
        conn = storage.connect(load(cfgp))
        cursor = storage.state_get(conn, "beeline:acme", "last_id") or "0"
        conn.close()
        for rid in [i for i in f.ids() if int(i) <= int(cursor)]:
            assert f"{rid}.mp3" in names and f"{rid}.json" in names, (cursor, rid)
        if kills >= 3:
            break
    assert kills >= 2
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0, r.stderr
    assert_delivered(f, out)


def test_lock_prevents_overlapping_runs(tmp_path, fake, ftp):
    f = fake(records=2)
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp))
    with JobLock(tmp_path / "data", "beeline-acme"):
        r = kit(cfgp, "beeline", "sync")
        assert r.returncode == 75 and "another run holds" in r.stderr
        assert f.count("list") == 0
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 0, r.stderr


def test_dry_run_and_limit(tmp_path, fake, ftp):
    f = fake(records=6)
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp))
    r = kit(cfgp, "beeline", "sync", "--dry-run", "--limit", "4")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("would export") == 4 and '"language": "ru"' in r.stdout
    assert not listing(ftp.root / "incoming") and f.count("download") == 0
    r = kit(cfgp, "beeline", "sync", "--limit", "4")
    assert r.returncode == 0 and "4 record(s) exported" in r.stdout
    assert_delivered(f, ftp.root / "incoming", f.ids()[:4])
    r = kit(cfgp, "beeline", "sync")
    assert "2 record(s) exported" in r.stdout
    assert_delivered(f, ftp.root / "incoming")


def test_destination_down_keeps_temp_files_bounded_and_cursor(tmp_path, fake, ftp):
    f = fake(records=3, size=30_000)
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp, retries=1))
    ftp.stop()
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 1 and "giving up after 2 attempt(s)" in r.stderr
    conn = storage.connect(load(cfgp))
    assert storage.state_get(conn, "beeline:acme", "last_id") is None
    assert not sync.skipped(sync.open_store(load(cfgp)))
    tmp = tmp_path / "data" / "beeline-tmp" / "acme"
    # The connection is refused before any download: nothing to keep.
    assert f.count("download") == 0 and not list(tmp.iterdir())
    for i in range(3):          # failures with files: the newest keep_failed records stay
        (tmp / f"{100 + i}.mp3").write_bytes(b"x")
        os.utime(tmp / f"{100 + i}.mp3", (1000 + i, 1000 + i))
    sync.prune_temp(tmp, 2)
    assert sorted(p.name for p in tmp.iterdir()) == ["101.mp3", "102.mp3"]


@pytest.mark.parametrize("name", [".", "..", "a.b", "-x", "a/b"])
def test_section_names_that_could_leave_the_temp_folder_are_refused(tmp_path, fake, name):
    f = fake(records=1)
    cfgp = write_cfg(tmp_path, section(name, f, "ftp://u@127.0.0.1/in", password="p"))
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 2 and f"[beeline:{name}]: section name {name!r} not allowed" in r.stderr, r.stderr
    assert str(cfgp) in r.stderr and not (tmp_path / "data").exists()


def test_temp_folder_is_proved_inside_its_parent(tmp_path):
    class Cfg:
        data_dir = str(tmp_path / "data")
    assert sync.temp_dir(Cfg, "acme") == (tmp_path / "data" / "beeline-tmp" / "acme").resolve()
    for bad in ("..", ".", "../x", "a/b"):
        with pytest.raises(sync.SyncError, match="is not inside"):
            sync.temp_dir(Cfg, bad)


def test_temp_folder_moved_elsewhere_by_a_symlink_fails_the_run_with_its_reason(tmp_path, fake):
    # The check ran before the run's error handling, so the CLI met a SyncError without a summary.
    f = fake(records=1)
    cfgp = write_cfg(tmp_path, section("acme", f, "ftp://u@127.0.0.1:1/in", password="p"))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep.mp3").write_bytes(b"not ours")
    (tmp_path / "data" / "beeline-tmp").mkdir(parents=True)
    (tmp_path / "data" / "beeline-tmp" / "acme").symlink_to(tmp_path / "elsewhere")
    r = kit(cfgp, "beeline", "sync")
    assert r.returncode == 1, r.stderr
    assert "beeline sync acme: 0 record(s) exported" in r.stderr and "FAILED: [beeline:acme]: temp folder" in r.stderr \
        and "is not inside" in r.stderr, r.stderr
    assert (tmp_path / "elsewhere" / "keep.mp3").read_bytes() == b"not ours", "nothing pruned outside the temp folder"


def test_config_errors_name_the_section_and_key(tmp_path, fake):
    f = fake(records=1)
    bad = write_cfg(tmp_path, section("acme", f, "http://x@host/dir"),
                    section("b2", f, "sftp://u@h/dir", password="", key_file=""))
    r = kit(bad, "beeline", "sync")
    assert r.returncode == 2
    assert "[beeline:acme] destination: expected a URL sftp://" in r.stderr
    assert "[beeline:b2] password, key_file: set a password or a key_file" in r.stderr


def test_doctor_and_cron_line(tmp_path, fake, ftp, sshd):
    from asterisk_kit.install import cron_jobs
    f = fake(records=1)
    (tmp_path / "empty_kh").write_text("")
    cfgp = write_cfg(tmp_path, ftp_section("acme", f, ftp),
                     section("bad", f, ftp.url(), password="wrong", token="nope"),
                     sftp_section("sf", f, sshd, tmp_path / "sf-out", tmp_path),
                     sftp_section("sfx", f, sshd, tmp_path / "sfx-out", tmp_path, known_hosts=tmp_path / "empty_kh"))
    jobs = cron_jobs(load(cfgp))
    assert [j for j in jobs if j["args"] == "beeline sync" and j["schedule"] == "*/15 * * * *"]
    r = kit(cfgp, "doctor")
    assert "ok      beeline acme api: token accepted" in r.stdout, r.stdout
    assert "ok      beeline acme destination:" in r.stdout and "writable" in r.stdout
    assert "FAILED  beeline bad api: " in r.stdout and "token refused" in r.stdout
    assert "FAILED  beeline bad destination: " in r.stdout
    assert f"ok      beeline sf destination: {sshd.url(str(tmp_path / 'sf-out'))} reachable and writable; " \
           f"host key found in {tmp_path / 'known_hosts'}" in r.stdout, r.stdout
    assert "FAILED  beeline sfx destination: " in r.stdout and "not in" in r.stdout and "ssh-keyscan" in r.stdout
    assert not any(n.startswith(".asterisk-kit-probe") for n in listing(ftp.root / "incoming"))
    assert not [j for j in cron_jobs(load(write_cfg(tmp_path))) if "beeline" in j["args"]]


@pytest.mark.parametrize("kind", ["ftp", "sftp"])
def test_publish_after_a_crash_is_idempotent(tmp_path, ftp, sshd, kind):
    c = {"password": FTP_PASSWORD, "transfer_timeout": 10, "key_file": "", "known_hosts": ""}
    if kind == "ftp":
        url, out = ftp.url("/pub"), ftp.root / "pub"
    else:
        out = tmp_path / "sftp-pub"
        url = sshd.url(str(out))
        (tmp_path / "kh").write_text(sshd.known_hosts_line())
        c.update(password="", key_file=str(sshd.client_key), known_hosts=str(tmp_path / "kh"))
    local = tmp_path / "a.mp3"
    local.write_bytes(b"ID3" + os.urandom(300_000))
    size = local.stat().st_size
    up = remote.make_uploader(dict(c, destination=url))
    try:
        up.connect()
        out.mkdir(exist_ok=True)
        (out / ".1.mp3.part").write_bytes(b"half")        # a killed run's partial upload
        assert up.publish(str(local), "1.mp3", size) == size
        assert (out / "1.mp3").read_bytes() == local.read_bytes() and not (out / ".1.mp3.part").exists()
        assert up.publish(str(local), "1.mp3", size) == 0       # renamed by a run killed before its cursor
        (out / "2.mp3").write_bytes(b"wrong")                   # a different file under the name: replaced
        assert up.publish(str(local), "2.mp3", size) == size
        assert (out / "2.mp3").read_bytes() == local.read_bytes()
        assert sorted(listing(out)) == ["1.mp3", "2.mp3"]
    finally:
        up.close()
