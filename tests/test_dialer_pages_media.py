"""The autodialer's do-not-call list and messages pages, in headless Chromium against a real
`asterisk-kit web` (no Asterisk needed: nothing is dialled here): real ffmpeg and espeak-ng make and
convert the audio, openpyxl the imported XLSX."""
from __future__ import annotations

import io
import re
import sqlite3
import subprocess
import time
import wave
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By

from asterisk_kit import config
from testbed.browser import login, screenshots_fit, wait_for
from testbed.kitcli import BIN
from testbed.webserver import WebServer

pytestmark = pytest.mark.browser
PASSWORD = "media pass 12"


def write_config(d: Path, dialer: str = "") -> Path:
    cfg = d / "kit.ini"
    cfg.write_text(f"""[general]
data_dir = {d}/data
[log]
dir = {d}/log
[asterisk]
ami_user = kit
ami_secret = not-used-here
spool_dir = {d}/spool
etc_dir = {d}/etc
run_user =
[web]
language = ru
[dialer]
sound_max_mb = 1
sound_max_seconds = 10
{dialer}""")
    return cfg


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("dialer-media")
    cfg = write_config(d)
    subprocess.run([str(BIN), "--config", str(cfg), "user", "add", "olga", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    srv = WebServer(cfg).start()
    srv.cfg, srv.dir = cfg, d
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def drv(site, browser):
    login(browser, site.url, "olga", PASSWORD)
    return browser


def db(site) -> sqlite3.Connection:
    c = sqlite3.connect(site.dir / "data" / "asterisk-kit.sqlite", timeout=30)
    c.row_factory = sqlite3.Row
    return c


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def tone(path: Path, seconds: float = 2.0, rate: int = 44100, channels: int = 1) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}:sample_rate={rate}", "-ac", str(channels),
           str(path))
    return path


def notice(drv) -> str:
    return wait_for(lambda: drv.find_element(By.ID, "notice").text, what="the notice")


def top_errors(drv) -> dict:
    """Errors at the top of the page: {field id the link points to: message}."""
    box = wait_for(lambda: drv.find_element(By.ID, "form-errors"), what="errors at the top")
    return {a.get_attribute("href").rsplit("#", 1)[1]: a.text for a in box.find_elements(By.CSS_SELECTOR, "li a")}


def http_session(drv) -> requests.Session:
    s = requests.Session()
    for c in drv.get_cookies():
        s.cookies.set(c["name"], c["value"])
    return s


# ---- config ----------------------------------------------------------------------------------------

def test_config_keys_of_the_messages():
    base = "[asterisk]\nami_user = kit\nami_secret = s3cret\n[dialer]\n"
    where = Path("/etc/asterisk-kit/asterisk-kit.ini")
    cfg = config.parse_text(base, where, environ={})
    d = cfg["dialer"]
    assert (d["sounds_dir"], d["sound_max_mb"], d["sound_max_seconds"], d["sound_convert_timeout"]) == ("", 20, 300, 60)
    assert (d["tts_voice"], d["tts_rate"], d["tts_max_chars"]) == ("ru", 150, 1000)
    with pytest.raises(config.ConfigError) as ei:
        config.parse_text(base + "sounds_dir = /var/lib/a,b\nsound_max_mb = lots\nsound_max_seconds = 0\n"
                          "sound_convert_timeout = 1\ntts_voice = ru;Dial\ntts_rate = 5\ntts_max_chars = -1\n",
                          where, environ={})
    text = "\n".join(ei.value.problems)
    for key in ("sounds_dir", "sound_max_mb", "sound_max_seconds", "sound_convert_timeout", "tts_voice", "tts_rate",
                "tts_max_chars"):
        assert f"{where}: [dialer] {key}: expected" in text, key
    assert len(ei.value.problems) == 7
    # What the building blocks read is what the config says.
    from asterisk_kit.dialer.sounds import SoundStore
    from asterisk_kit.dialer.tts import Speech
    cfg = config.parse_text(base + "sounds_dir = /srv/kit-sounds\nsound_max_mb = 3\nsound_max_seconds = 42\n"
                            "tts_voice = ru+f3\ntts_rate = 120\n", where, environ={})
    st = SoundStore.from_config(cfg)
    sp = Speech.from_config(cfg, st)
    assert (str(st.folder), st.max_bytes, st.max_seconds, sp.voice, sp.rate) == (
        "/srv/kit-sounds", 3 * 1024 * 1024, 42.0, "ru+f3", 120)


# ---- the do-not-call list ------------------------------------------------------------------------

def sup_rows(drv) -> dict:
    return {tr.get_attribute("data-number"): tr
            for tr in drv.find_elements(By.CSS_SELECTOR, "#sup-table tr[data-number]")}


def stored(site) -> dict:
    return {r["number"]: (r["source"], r["note"]) for r in db(site).execute("SELECT * FROM dialer_suppressed")}


def test_suppression_add_search_remove_import(site, drv, tmp_path):
    drv.get(site.url + "/dialer/suppressed")
    active = drv.find_element(By.CSS_SELECTOR, "#dialer-nav a.active")
    assert active.get_attribute("href").endswith("/dialer/suppressed")
    assert drv.find_element(By.ID, "sup-empty").text == "Список пуст."

    # Add: normalised like every number; a bad one is refused at the top, linking to the field, input kept.
    drv.find_element(By.ID, "sup-number").send_keys("+7 (916) 000-00-01")
    drv.find_element(By.ID, "sup-note").send_keys("просил не звонить")
    drv.find_element(By.ID, "sup-add").click()
    assert notice(drv) == "Номер 89160000001 добавлен в список."
    assert stored(site) == {"89160000001": ("page:olga", "просил не звонить")}
    assert sup_rows(drv)["89160000001"].find_element(By.CSS_SELECTOR, ".source").text == "добавил olga"
    drv.find_element(By.ID, "sup-number").send_keys("12345")
    drv.find_element(By.ID, "sup-note").send_keys("короткий")
    drv.find_element(By.ID, "sup-add").click()
    assert top_errors(drv) == {"sup-number": "номер не в формате 8XXXXXXXXXX"}
    assert drv.find_element(By.ID, "sup-number").get_attribute("value") == "12345"
    assert drv.find_element(By.ID, "sup-note").get_attribute("value") == "короткий"
    assert drv.find_element(By.CSS_SELECTOR, "#form-errors a").get_attribute("href").endswith("#sup-number")
    assert len(stored(site)) == 1

    # An opt-out recorded by a run shows where it came from, with a link to the run.
    with db(site) as c:
        c.execute("INSERT INTO dialer_suppressed (number, added, source, note) VALUES "
                  "('89160000009', ?, 'run 7', 'pressed 9')", (time.time(),))
    drv.get(site.url + "/dialer/suppressed")
    src = sup_rows(drv)["89160000009"].find_element(By.CSS_SELECTOR, ".source a")
    assert src.text == "отказ в запуске #7" and src.get_attribute("href").endswith("/dialer/runs/7")

    # Import a paste: added / already there / rejected, rejected lines left in the box.
    drv.find_element(By.ID, "sup-text").send_keys("89160000001\n89160000002;из CRM\nhello\n+7 916 000 00 03\n")
    drv.find_element(By.ID, "sup-import").click()
    assert notice(drv) == "Добавлено: 2, уже были в списке: 1, отклонено: 1."
    assert drv.find_element(By.ID, "import-report").text.startswith("Строка 3 «hello»: ")
    assert drv.find_element(By.ID, "sup-text").get_attribute("value") == "hello"
    assert stored(site)["89160000002"] == ("import:olga", "из CRM") and "89160000003" in stored(site)
    assert stored(site)["89160000001"] == ("page:olga", "просил не звонить")   # kept its first source

    # Import an Excel file with a header row.
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.append(["Телефон", "Примечание"])
    ws.append([89160000004, "жалоба"])
    ws.append(["8 916 000-00-02", ""])
    ws.append(["не номер", ""])
    xlsx = tmp_path / "отказы.xlsx"
    wb.save(xlsx)
    drv.find_element(By.ID, "sup-file").send_keys(str(xlsx))
    drv.find_element(By.ID, "sup-import").click()
    assert notice(drv) == "Добавлено: 1, уже были в списке: 1, отклонено: 1."
    assert "Строка 4 «не номер»" in drv.find_element(By.ID, "import-report").text
    assert stored(site)["89160000004"] == ("import:olga", "жалоба")
    # A file that is no list: a clear error at the top, on the file field.
    bad = tmp_path / "old.xlsx"
    bad.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    drv.find_element(By.ID, "sup-file").send_keys(str(bad))
    drv.find_element(By.ID, "sup-import").click()
    assert "sup-file" in top_errors(drv) and ".xlsx" in top_errors(drv)["sup-file"]

    # Search by a part of the number, typed the way people type it.
    drv.find_element(By.ID, "q").send_keys("000-00-02")
    drv.find_element(By.ID, "search").click()
    wait_for(lambda: set(sup_rows(drv)) == {"89160000002"}, what="the search result")
    assert drv.find_element(By.ID, "sup-count").text == "Найдено: 1 из 5"

    # Remove, after the confirmation; dismissing it removes nothing.
    sup_rows(drv)["89160000002"].find_element(By.CSS_SELECTOR, "button.remove").click()
    wait_for(lambda: drv.switch_to.alert, what="the confirmation").dismiss()
    assert "89160000002" in stored(site)
    sup_rows(drv)["89160000002"].find_element(By.CSS_SELECTOR, "button.remove").click()
    alert = wait_for(lambda: drv.switch_to.alert, what="the confirmation")
    assert "89160000002" in alert.text
    alert.accept()
    assert notice(drv) == "Номер 89160000002 убран из списка."
    assert "89160000002" not in stored(site)
    assert drv.find_element(By.ID, "q").get_attribute("value") == "000-00-02"   # back on the same search


def test_a_list_of_100000_numbers_is_paged(site, drv):
    with db(site) as c:
        t0 = time.time() - 86400
        c.executemany("INSERT INTO dialer_suppressed (number, added, source, note) VALUES (?, ?, 'import:bulk', '')",
                      ((f"8917{i:07d}", t0 + i / 1000) for i in range(100_000)))
    total = db(site).execute("SELECT count(*) FROM dialer_suppressed").fetchone()[0]
    drv.get(site.url + "/dialer/suppressed")
    assert drv.find_element(By.ID, "sup-count").text == f"В списке: {total}"
    assert len(sup_rows(drv)) == 100
    pages = -(-total // 100)
    assert drv.find_element(By.ID, "page-of").text == f"Страница 1 из {pages}"
    drv.get(site.url + f"/dialer/suppressed?page={pages}")
    assert len(sup_rows(drv)) == total - (pages - 1) * 100
    assert "89170000000" in sup_rows(drv)                 # the oldest is on the last page
    drv.find_element(By.ID, "prev").click()
    wait_for(lambda: drv.find_element(By.ID, "page-of").text == f"Страница {pages - 1} из {pages}", what="prev")
    drv.get(site.url + "/dialer/suppressed?q=8917009999")
    assert set(sup_rows(drv)) == {f"8917009999{i}" for i in range(10)}


# ---- messages -------------------------------------------------------------------------------------

def items(drv) -> dict:
    return {li.find_element(By.CSS_SELECTOR, ".title").text: li
            for li in drv.find_elements(By.CSS_SELECTOR, "#sound-list li.sound")}


def upload(drv, site, path: Path, title: str = "") -> None:
    drv.get(site.url + "/dialer/sounds")
    t = drv.find_element(By.ID, "snd-title")
    t.clear()
    if title:
        t.send_keys(title)
    drv.find_element(By.ID, "snd-file").send_keys(str(path))
    drv.find_element(By.ID, "snd-upload").click()


def test_upload_preview_and_bad_files(site, drv, tmp_path):
    drv.get(site.url + "/dialer/sounds")
    assert drv.find_element(By.ID, "sound-empty").text == "Сообщений пока нет."
    upload(drv, site, tone(tmp_path / "greeting.mp3", seconds=2.0, rate=44100, channels=2), "Приветствие")
    assert notice(drv) == "Сообщение «Приветствие» добавлено."
    li = items(drv)["Приветствие"]
    sid = li.get_attribute("data-sound")
    assert re.fullmatch(r"[0-9a-f]{32}", sid)
    audio = li.find_element(By.TAG_NAME, "audio")
    assert audio.get_attribute("controls") is not None
    assert audio.get_attribute("src").endswith(f"/dialer/sounds/{sid}.wav")
    row = db(site).execute("SELECT * FROM dialer_sounds WHERE id = ?", (sid,)).fetchone()
    assert (row["title"], row["kind"], row["by_user"]) == ("Приветствие", "upload", "olga")
    assert abs(row["seconds"] - 2.0) < 0.05

    # The preview is the converted file: WAV, 8 kHz, mono, 16-bit, 2 s; seeking works; login required.
    s = http_session(drv)
    r = s.get(f"{site.url}/dialer/sounds/{sid}.wav", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(r.content)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert abs(w.getnframes() / 8000 - 2.0) < 0.05
    assert r.content == (site.dir / "data" / "sounds" / f"{sid}.wav").read_bytes()
    part = s.get(f"{site.url}/dialer/sounds/{sid}.wav", headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == r.content[100:200]
    assert requests.get(f"{site.url}/dialer/sounds/{sid}.wav", allow_redirects=False,
                        timeout=10).status_code in (302, 303)
    for bad in ("../../kit.ini", sid.upper(), sid[:-1], "0" * 32):
        assert s.get(f"{site.url}/dialer/sounds/{bad}.wav", timeout=10).status_code == 404, bad

    # The same recording again is not a second message.
    upload(drv, site, tmp_path / "greeting.mp3", "Ещё раз")
    assert notice(drv) == "Эта запись уже есть в списке: «Приветствие»."
    assert db(site).execute("SELECT count(*) FROM dialer_sounds").fetchone()[0] == 1

    # Bad files: a clear error at the top linking to the file field, the title kept, nothing stored.
    (tmp_path / "notes.mp3").write_text("это не звук\n" * 50)
    (tmp_path / "empty.wav").write_bytes(b"")
    cases = [(tmp_path / "notes.mp3", "Это не звуковой файл"), (tmp_path / "empty.wav", "Файл пустой."),
             (tone(tmp_path / "long.mp3", seconds=12.5, rate=8000), "Запись длиннее 10 с."),
             (tone(tmp_path / "big.wav", seconds=7, rate=44100, channels=2), "Файл больше 1 МБ.")]
    for path, msg in cases:
        upload(drv, site, path, "Плохой файл")
        errs = top_errors(drv)
        assert list(errs) == ["snd-file"] and errs["snd-file"].startswith(msg), (path.name, errs)
        assert drv.find_element(By.ID, "snd-title").get_attribute("value") == "Плохой файл"
    assert db(site).execute("SELECT count(*) FROM dialer_sounds").fetchone()[0] == 1
    assert [p.name for p in (site.dir / "data" / "sounds").iterdir()] == [f"{sid}.wav"]
    assert [p.name for p in (site.dir / "data" / "tmp").iterdir()] == []


def test_text_to_speech_once_then_cached(site, drv):
    drv.get(site.url + "/dialer/sounds")
    text = "Здравствуйте! Это автоинформатор компании, проверка связи."

    def speak(title=""):
        drv.get(site.url + "/dialer/sounds")
        drv.find_element(By.ID, "tts-title").send_keys(title)
        drv.find_element(By.ID, "tts-text").send_keys(text)
        drv.find_element(By.ID, "tts-submit").click()

    speak("Проверка связи")
    assert notice(drv) == "Сообщение «Проверка связи» добавлено."
    li = items(drv)["Проверка связи"]
    sid = li.get_attribute("data-sound")
    assert li.find_element(By.CSS_SELECTOR, ".spoken").text == text
    wav = site.dir / "data" / "sounds" / f"{sid}.wav"
    with wave.open(str(wav)) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 1) and w.getnframes() > 8000
    mtime = wav.stat().st_mtime_ns
    speak("Другое название")
    assert notice(drv) == "Эта запись уже есть в списке: «Проверка связи»."
    assert wav.stat().st_mtime_ns == mtime
    assert db(site).execute("SELECT count(*) FROM dialer_sounds WHERE kind = 'tts'").fetchone()[0] == 1
    # Too long a text: the error on the text field, the text kept.
    drv.get(site.url + "/dialer/sounds")
    drv.execute_script("document.getElementById('tts-text').removeAttribute('maxlength')")
    drv.find_element(By.ID, "tts-text").send_keys("а" * 1001)
    drv.find_element(By.ID, "tts-submit").click()
    assert top_errors(drv) == {"tts-text": "Текст длиннее 1000 символов."}
    assert len(drv.find_element(By.ID, "tts-text").get_attribute("value")) == 1001


def test_choices_rename_and_delete_refused_while_used(site, drv):
    from asterisk_kit import storage
    from asterisk_kit.dialer import soundlist, store
    cfg = config.load(str(site.cfg))
    conn = storage.connect(cfg)
    sid = db(site).execute("SELECT id FROM dialer_sounds WHERE title = 'Приветствие'").fetchone()[0]
    name = str(site.dir / "data" / "sounds" / sid)
    ch = soundlist.choices(conn, cfg)
    assert ch[:2] == [("custom/avtoobzvon", "custom/avtoobzvon"), ("custom/avtoobzvon-ivr", "custom/avtoobzvon-ivr")]
    assert (name, "Приветствие") in ch
    # What the campaign form offers passes the campaign's own check.
    from asterisk_kit.dialer import campaigns
    assert campaigns.check_form(cfg, {"sound": name})[1] == {}

    # Rename; the list and the choices follow.
    drv.get(site.url + "/dialer/sounds")
    box = drv.find_element(By.ID, f"title-{sid}")
    box.clear()
    box.send_keys("Приветствие осень")
    items(drv)["Приветствие"].find_element(By.CSS_SELECTOR, "button.rename").click()
    assert notice(drv) == "Название сохранено: «Приветствие осень»."
    assert (name, "Приветствие осень") in soundlist.choices(conn, cfg)

    # In use by a campaign: refused, saying which; the file stays and still plays.
    camp = store.create_campaign(conn, "Осенняя акция", {"sound": name})
    items(drv)["Приветствие осень"].find_element(By.CSS_SELECTOR, "button.delete").click()
    wait_for(lambda: drv.switch_to.alert, what="the confirmation").accept()
    assert top_errors(drv) == {f"del-{sid}": "«Приветствие осень» нельзя удалить: его использует "
                                             "кампания «Осенняя акция»."}
    assert "кампания «Осенняя акция»" in items(drv)["Приветствие осень"].find_element(By.CSS_SELECTOR, ".used-by").text
    assert (site.dir / "data" / "sounds" / f"{sid}.wav").exists()
    # No longer used: deleted, file and all; the preview is gone.
    store.update_campaign(conn, camp, settings={})
    drv.get(site.url + "/dialer/sounds")
    items(drv)["Приветствие осень"].find_element(By.CSS_SELECTOR, "button.delete").click()
    wait_for(lambda: drv.switch_to.alert, what="the confirmation").accept()
    assert notice(drv) == "Сообщение «Приветствие осень» удалено."
    assert "Приветствие осень" not in items(drv)
    assert not (site.dir / "data" / "sounds" / f"{sid}.wav").exists()
    assert http_session(drv).get(f"{site.url}/dialer/sounds/{sid}.wav", timeout=10).status_code == 404
    assert name not in [v for v, _ in soundlist.choices(conn, cfg)]


def test_pages_fit_a_phone_in_both_languages(site, drv, tmp_path):
    # Something on each page: a message, and a few do-not-call entries (the list holds 100 000 already).
    drv.get(site.url + "/dialer/sounds")
    upload(drv, site, tone(tmp_path / "a.ogg", seconds=1.5), "Напоминание о записи к врачу на завтра, длинное название")
    notice(drv)
    for lang in ("ru", "en"):
        drv.get(f"{site.url}/lang/{lang}?next=/")
        for page in ("suppressed", "sounds"):
            too_wide = screenshots_fit(drv, f"{site.url}/dialer/{page}", f"dialer-{page}-{lang}",
                                       ready=lambda d: d.find_elements(By.ID, "dialer-nav"))
            assert too_wide == {}, (page, lang, too_wide)
    assert drv.find_element(By.CSS_SELECTOR, "#dialer-nav a.active").text == "Messages"
    assert drv.find_element(By.ID, "upload").find_element(By.TAG_NAME, "h2").text == "Upload a recording"
    drv.get(f"{site.url}/lang/ru?next=/")


def test_without_espeak_ng_and_ffmpeg_the_page_says_so(site, monkeypatch, tmp_path):
    """A PBX without the Debian packages: the speech form is replaced by a line saying espeak-ng is not
    installed, and an upload is refused naming ffmpeg (no traceback, nothing stored)."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    srv = WebServer(site.cfg).start()
    try:
        s = requests.Session()
        tok = re.search(r'name="csrf" value="([^"]+)"', s.get(srv.url + "/login", timeout=10).text).group(1)
        s.post(srv.url + "/login", data={"csrf": tok, "user": "olga", "password": PASSWORD}, timeout=10)
        page = s.get(srv.url + "/dialer/sounds", timeout=10).text
        assert 'id="tts-missing"' in page and "не установлен espeak-ng" in page and 'id="tts-form"' not in page
        tok = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        before = db(site).execute("SELECT count(*) FROM dialer_sounds").fetchone()[0]
        r = s.post(srv.url + "/dialer/sounds/upload", data={"csrf": tok, "title": "x"},
                   files={"file": ("a.mp3", b"ID3" + b"\0" * 500, "audio/mpeg")}, timeout=30)
        assert r.status_code == 200 and "На сервере не установлен ffmpeg" in r.text
        assert db(site).execute("SELECT count(*) FROM dialer_sounds").fetchone()[0] == before
    finally:
        srv.stop()
