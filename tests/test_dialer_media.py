"""Autodialer media building blocks: uploads converted by the real ffmpeg, Russian speech by the real
espeak-ng, exports read back by openpyxl and the csv module, list files made by openpyxl and
msoffcrypto, and the callee on the real Asterisk testbed hearing exactly the uploaded message."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import time
import wave
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from asterisk_kit.dialer import export
from asterisk_kit.dialer.listfiles import decode_text, read_csv, read_xlsx
from asterisk_kit.dialer.media_strings import STRINGS, MediaError
from asterisk_kit.dialer.sounds import SoundStore
from asterisk_kit.dialer.tts import Speech

# ---- test audio, made by the same tools a phone's files come from --------------------------------


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def tone(path: Path, seconds: float = 2.0, freq: int = 440, rate: int = 44100, channels: int = 1, codec=()) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds}:sample_rate={rate}",
           "-ac", str(channels), *codec, str(path))
    return path


def speech(path: Path, text: str) -> Path:
    wav = path.with_suffix(".speech.wav")
    subprocess.run(["espeak-ng", "-v", "ru", "-w", str(wav), text], check=True, timeout=60)
    ffmpeg("-i", str(wav), str(path))
    return path


def samples(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def dominant_hz(x: np.ndarray, rate: int = 8000) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float(np.argmax(spec) * rate / len(x))


def best_match(heard: np.ndarray, sent: np.ndarray):
    """(normalised cross-correlation, share of SENT covered) at the lag where SENT fits HEARD best;
    (1.0, 1.0): HEARD holds exactly the samples of SENT."""
    n = len(heard) + len(sent)
    corr = np.fft.irfft(np.fft.rfft(heard, n) * np.conj(np.fft.rfft(sent, n)), n)
    lag = int(np.argmax(corr[:len(heard)]))
    seg = heard[lag:lag + len(sent)]
    ref = sent[:len(seg)]
    return float(np.dot(seg, ref) / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-9)), len(seg) / len(sent)


@pytest.fixture()
def store(tmp_path):
    return SoundStore(tmp_path / "data" / "sounds", tmp_path / "data" / "tmp", max_bytes=2 * 1024 * 1024,
                      max_seconds=10, timeout=60)


def leftovers(store):
    return sorted(p.name for p in store.tmp_dir.iterdir()) if store.tmp_dir.exists() else []


# ---- sounds --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kw", [
    ("phone.mp3", {}), ("phone.ogg", {"codec": ("-c:a", "libvorbis")}), ("phone.m4a", {"codec": ("-c:a", "aac")}),
    ("phone.wav", {}), ("stereo48k.wav", {"rate": 48000, "channels": 2}),
    ("voice.opus.ogg", {"codec": ("-c:a", "libopus")}), ("old.wma", {"codec": ("-c:a", "wmav2")}),
    ("android.3gp", {"rate": 8000, "codec": ("-c:a", "aac")}), ("voice.webm", {"codec": ("-c:a", "libopus")}),
])
def test_upload_is_converted_to_what_asterisk_plays(store, tmp_path, name, kw):
    src = tone(tmp_path / name, seconds=2.0, freq=440, **kw)
    snd = store.add_upload(src.read_bytes())
    assert snd.path.parent == store.folder and snd.path.name == f"{snd.id}.wav" and len(snd.id) == 32
    assert snd.playback_name == str(store.folder / snd.id)
    x = samples(snd.path)                                    # 8 kHz, mono, 16-bit (asserted inside)
    assert abs(len(x) / 8000 - 2.0) < 0.1 and abs(snd.seconds - len(x) / 8000) < 1e-9
    assert abs(dominant_hz(x) - 440) < 5                     # the content is the tone, not noise
    assert (os.stat(snd.path).st_mode & 0o777) == 0o640
    assert leftovers(store) == []                            # temp files of the conversion are gone
    with open(snd.path, "rb") as f:
        assert f.read(4) == b"RIFF" and b"LIST" not in f.read(64)  # no metadata chunk copied from the upload


def test_same_upload_is_one_file_and_file_objects_stream(store, tmp_path):
    data = tone(tmp_path / "a.mp3").read_bytes()
    a = store.add_upload(data)
    mtime = a.path.stat().st_mtime_ns
    with open(tmp_path / "a.mp3", "rb") as f:
        b = store.add_upload(f)
    assert a == b and a.path.stat().st_mtime_ns == mtime
    c = store.add_upload(tone(tmp_path / "b.mp3", freq=600).read_bytes())
    assert c.id != a.id and sorted(p.name for p in store.folder.iterdir()) == sorted([f"{a.id}.wav", f"{c.id}.wav"])
    assert store.get(a.id) == a
    store.delete(a.id)
    assert not a.path.exists()


def test_temp_files_of_a_killed_conversion_are_swept(store, tmp_path):
    store.tmp_dir.mkdir(parents=True)
    old, fresh, other = (store.tmp_dir / n for n in ("upload-dead1", "converted-busy.wav", "not-ours"))
    for p in (old, fresh, other):
        p.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    os.utime(other, (time.time() - 7200, time.time() - 7200))
    store.add_upload(tone(tmp_path / "a.mp3").read_bytes())
    assert leftovers(store) == ["converted-busy.wav", "not-ours"]


def bad_inputs(tmp_path):
    png = tmp_path / "photo.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=32x32", "-frames:v", "1", str(png))
    silent = tmp_path / "silent.mp3"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", "2", str(silent))
    return {
        "empty": (b"", "sound.empty"),
        "text": ("Это не звук, а текст.\n".encode() * 50, "sound.not_audio"),
        "image": (png.read_bytes(), "sound.not_audio"),
        "truncated mp4": (tone(tmp_path / "t.m4a", codec=("-c:a", "aac")).read_bytes()[:400], "sound.not_audio"),
        "too long": (tone(tmp_path / "long.mp3", seconds=12).read_bytes(), "sound.too_long"),
        "silent": (silent.read_bytes(), "sound.silent"),
        "too big": (os.urandom(2 * 1024 * 1024 + 1), "sound.too_big"),
    }


def test_bad_uploads_get_a_clear_error_and_leave_nothing(store, tmp_path):
    for what, (data, key) in bad_inputs(tmp_path).items():
        with pytest.raises(MediaError) as e:
            store.add_upload(data)
        assert e.value.key == key, what
        ru, en = e.value.text("ru"), e.value.text("en")
        assert ru != en and key not in ru and key not in en and "{" not in ru + en, (what, ru, en)
        assert leftovers(store) == [], what
    assert not list(store.folder.glob("*")) if store.folder.exists() else True
    with pytest.raises(MediaError) as e:
        store.add_upload(b"x" * 10)
    assert e.value.text("ru") == "Это не звуковой файл (или формат не поддерживается). Подойдут mp3, wav, ogg, m4a."


def test_uploaded_playlist_cannot_make_ffmpeg_read_other_files(store, tmp_path):
    """An HLS playlist naming a local file: bare ffmpeg follows it (checked here), the kit refuses it."""
    secret = tone(tmp_path / "secret.mp3", freq=700)
    playlist = (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\nfile://{secret}\n#EXT-X-ENDLIST\n").encode()
    probe = tmp_path / "upload"
    probe.write_bytes(playlist)
    bare = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-protocol_whitelist", "file", "-i",
                           str(probe), "-ac", "1", "-ar", "8000", "-f", "wav", "-y", str(tmp_path / "leak.wav")],
                          capture_output=True, timeout=60)
    assert bare.returncode == 0, "ffmpeg no longer follows playlists: the guard below proves nothing"
    with pytest.raises(MediaError) as e:
        store.add_upload(playlist)
    assert e.value.key == "sound.not_audio"


def test_conversion_timeout_missing_tool_and_unsafe_folder(tmp_path):
    src = tone(tmp_path / "long.mp3", seconds=60).read_bytes()
    slow = SoundStore(tmp_path / "s", tmp_path / "t", max_seconds=120, timeout=0.01)
    with pytest.raises(MediaError) as e:
        slow.add_upload(src)
    assert e.value.key == "sound.timeout" and leftovers(slow) == []
    with pytest.raises(MediaError) as e:
        SoundStore(tmp_path / "s", tmp_path / "t", ffmpeg="ffmpeg-not-installed").add_upload(src)
    assert e.value.key == "sound.no_tool" and "ffmpeg" in e.value.text("ru")
    with pytest.raises(ValueError, match="Playback"):
        SoundStore(tmp_path / "a,b", tmp_path / "t")
    for bad in ("../../etc/passwd", "x" * 32, "", None):
        with pytest.raises(MediaError):
            slow.get(bad)  # type: ignore[arg-type]


def test_sounds_from_config(tmp_path):
    from asterisk_kit.config import parse_text
    cfg = parse_text(f"[general]\ndata_dir = {tmp_path}/d\n[asterisk]\nami_user = a\nami_secret = b\nrun_user =\n"
                     "[dialer]\n", tmp_path / "kit.ini")
    s = SoundStore.from_config(cfg)
    assert s.folder == tmp_path / "d" / "sounds" and s.tmp_dir == tmp_path / "d" / "tmp"
    assert (s.max_bytes, s.max_seconds, s.timeout) == (20 * 1024 * 1024, 300, 60)
    snd = s.add_upload(tone(tmp_path / "x.ogg", codec=("-c:a", "libvorbis")).read_bytes())
    assert snd.path.exists() and (os.stat(s.folder).st_mode & 0o777) == 0o750


# ---- text to speech ------------------------------------------------------------------------------

def test_russian_speech_is_rendered_once_and_cached(store):
    tts = Speech(store)
    text = "Здравствуйте! Напоминаем о записи на завтра, в десять часов."
    a = tts.say(text)
    x = samples(a.path)
    assert a.seconds > 2 and np.abs(x).max() > 1000
    # Same text (whitespace aside): served from the folder; the engine is not even run (it is missing here).
    cached = Speech(store, exe="espeak-ng-not-installed").say("  Здравствуйте!\nНапоминаем о записи на завтра,"
                                                               " в десять часов.  ")
    assert cached == a
    with pytest.raises(MediaError) as e:
        Speech(store, exe="espeak-ng-not-installed").say("Другой текст")
    assert e.value.key == "sound.no_tool"
    b = tts.say("Другой текст")
    assert b.id != a.id
    # Text is text: a leading "-v en -w /tmp/x" is spoken, not taken as options.
    c = tts.say("-w /tmp/owned.wav -v en")
    assert c.seconds > 0.5 and not Path("/tmp/owned.wav").exists()
    assert Speech(store, rate=220).say(text).id != a.id            # the rate is part of the cache key
    assert leftovers(store) == []


def test_speech_errors(store):
    for text, key in (("", "tts.empty"), ("  \n\t ", "tts.empty"), ("а" * 1001, "tts.too_long")):
        with pytest.raises(MediaError) as e:
            Speech(store).say(text)
        assert e.value.key == key
    with pytest.raises(MediaError) as e:
        Speech(store, voice="zz").say("Привет")
    assert e.value.key == "tts.voice" and "zz" in e.value.text("ru")
    with pytest.raises(MediaError):
        Speech(store, voice="ru,1")


# ---- exports -------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 23, 7, 15, 0, tzinfo=timezone.utc).timestamp()    # 10:15 in Moscow
EVIL = ["=HYPERLINK(\"http://x\",\"click\")", "+7 916 123", "-2+3", "@SUM(A1:A2)", "\tcmd", "=1+2"]


def export_rows(n=None):
    rows = [{"number": "89161234567", "comment": "Иванов; склад, «срочно»", "attempts": 2, "first_call": T0,
             "last_call": T0 + 3600, "outcome": "answered", "digit": "1", "opted_out": False},
            {"number": "89161234568", "comment": "", "attempts": 0, "first_call": None, "last_call": None,
             "outcome": "pending", "digit": "", "opted_out": True}]
    rows += [{"number": f"8916000000{i}", "comment": c, "attempts": 1, "first_call": T0, "last_call": T0,
              "outcome": "busy", "digit": "", "opted_out": False} for i, c in enumerate(EVIL)]
    return rows


def test_csv_opens_in_russian_excel_and_carries_no_formula():
    data = b"".join(export.csv_chunks(export_rows(), lang="ru", tz="Europe/Moscow"))
    assert data.startswith(b"\xef\xbb\xbf")                       # UTF-8 BOM: Excel reads UTF-8, not cp1251
    text = data[3:].decode("utf-8")
    assert "\r\n" in text and not text.startswith("sep=")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert rows[0] == list(export.HEADERS["ru"])
    assert rows[1] == ["89161234567", "Иванов; склад, «срочно»", "2", "2026-11-23 10:15:00", "2026-11-23 11:15:00",
                       "ответил", "1", ""]
    assert rows[2] == ["89161234568", "", "0", "", "", "ожидает", "", "да"]
    comments = [r[1] for r in rows[3:]]
    assert comments == ["'" + c for c in EVIL]                      # every formula-looking text neutralised
    assert all(not c.startswith(("=", "+", "-", "@", "\t")) for r in rows[1:] for c in r)
    en = b"".join(export.csv_chunks(export_rows()[:1], lang="en", tz="UTC")).decode("utf-8-sig")
    assert en.splitlines()[1].endswith(";2026-11-23 07:15:00;2026-11-23 08:15:00;answered;1;")


def test_csv_is_streamed():
    made = []

    def gen():
        for i in range(5000):
            made.append(i)
            yield {"number": f"8{i:010d}", "outcome": "answered"}
    chunks = export.csv_chunks(gen(), batch=500)
    next(chunks)
    first_rows = next(chunks)
    assert first_rows.count(b"\r\n") == 500 and len(made) <= 501    # rows are pulled as chunks go out
    assert sum(c.count(b"\r\n") for c in chunks) == 4500


def test_xlsx_cells_are_text_dates_and_never_formulas(tmp_path):
    from openpyxl import load_workbook
    out = tmp_path / "run.xlsx"
    export.write_xlsx(export_rows(), out, lang="ru", tz="Europe/Moscow", title="Обзвон 23.11 [утро]")
    with zipfile.ZipFile(out) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "<f " not in sheet                # no formula element at all
    wb = load_workbook(out)
    ws = wb.worksheets[0]
    assert ws.title == "Обзвон 23.11 _утро_"
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == export.HEADERS["ru"]
    assert rows[1] == ("89161234567", "Иванов; склад, «срочно»", 2, datetime(2026, 11, 23, 10, 15),
                       datetime(2026, 11, 23, 11, 15), "ответил", "1", None)
    assert rows[2][7] == "да" and rows[2][3] is None
    evil = [ws.cell(row=4 + i, column=2) for i in range(len(EVIL))]
    assert [c.value for c in evil] == EVIL and all(c.data_type == "s" for c in evil)   # exact text, type string
    assert ws.freeze_panes == "A2"


# ---- list files ----------------------------------------------------------------------------------

def xlsx_bytes(*sheets) -> bytes:
    from openpyxl import Workbook
    wb = Workbook()
    wb.remove(wb.active)
    for i, rows in enumerate(sheets):
        ws = wb.create_sheet(f"s{i}")
        for r in rows:
            ws.append(r)
    b = io.BytesIO()
    wb.save(b)
    return b.getvalue()


def test_xlsx_with_header_columns_in_any_order():
    data = xlsx_bytes([["ФИО", "Комментарий", "Телефон"], ["Иванов", "склад", 89161234567], [None, None, None],
                       ["Петров", None, "+7 (916) 123-45-68"], ["Без номера", "x", None], ["", "", "8 916 1234569"]],
                      [["89990000000", "второй лист не читается"]])
    assert list(read_xlsx(data)) == [(2, "89161234567", "склад"), (4, "+7 (916) 123-45-68", ""),
                                     (6, "8 916 1234569", "")]


def test_xlsx_without_header_and_english_header():
    assert list(read_xlsx(xlsx_bytes([[89161234567, "первый"], ["89161234568"]]))) == [
        (1, "89161234567", "первый"), (2, "89161234568", "")]
    assert list(read_xlsx(xlsx_bytes([["Phone number", "Note"], ["89161234567", "hi"]]))) == [
        (2, "89161234567", "hi")]


def test_xlsx_wrong_dimension_is_read_whole(tmp_path):
    """Some writers state a used range of A1 only; the reader must not cut the list there."""
    data = xlsx_bytes([["89161234567", "a"], ["89161234568", "b"]])
    src, out = io.BytesIO(data), io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            body = zin.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                body = body.replace(b'<dimension ref="A1:B2"', b'<dimension ref="A1"')
                assert b'<dimension ref="A1" />' in body
            zout.writestr(item, body)
    assert [r[1:] for r in read_xlsx(out.getvalue())] == [("89161234567", "a"), ("89161234568", "b")]


def encrypted_xlsx() -> bytes:
    from msoffcrypto.format.ooxml import OOXMLFile
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(xlsx_bytes([["89161234567"]]))).encrypt("secret", out)
    return out.getvalue()


def test_xlsx_errors(tmp_path):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
        with z.open("xl/worksheets/sheet1.xml", "w") as f:
            for _ in range(160):
                f.write(b" " * (1 << 20))
    assert len(bomb.getvalue()) < 1024 * 1024
    ole_xls = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 4000 + "Workbook".encode("utf-16-le")
    cases = {
        "text": ("89161234567;Иванов\n".encode(), "list.not_xlsx"),
        "empty file": (b"", "list.empty"),
        "zip without workbook": (_zip({"a.txt": b"hi"}), "list.not_xlsx"),
        "old xls": (ole_xls, "list.not_xlsx"),
        "encrypted": (encrypted_xlsx(), "list.encrypted"),
        "zip bomb": (bomb.getvalue(), "list.too_big"),
        "empty sheet": (xlsx_bytes([]), "list.empty"),
        "only a header": (xlsx_bytes([["Телефон", "Комментарий"]]), "list.empty"),
        "too many rows": (xlsx_bytes([[f"8916123{i:04d}"] for i in range(30)]), "list.too_many_rows"),
        "too wide": (xlsx_bytes([["89161234567"] + ["x"] * 300]), "list.too_big_row"),
    }
    for what, (data, key) in cases.items():
        t = time.monotonic()
        with pytest.raises(MediaError) as e:
            list(read_xlsx(data, max_rows=20, max_cols=200))
        assert e.value.key == key, (what, e.value.key)
        assert e.value.key in STRINGS["ru"] and e.value.key in STRINGS["en"]
        assert time.monotonic() - t < 10, what


def lying_bomb() -> bytes:
    """A real workbook whose sheet unpacks to 160 MB while the zip directory claims 2 000 bytes."""
    src = zipfile.ZipFile(io.BytesIO(xlsx_bytes([["89161234567"]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for item in src.infolist():
            if item.filename != "xl/worksheets/sheet1.xml":
                z.writestr(item.filename, src.read(item))
                continue
            with z.open(item.filename, "w") as f:
                f.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
                for _ in range(160):
                    f.write(b" " * (1 << 20))
                f.write(b"</sheetData></worksheet>")
    data = bytearray(out.getvalue())
    name = b"xl/worksheets/sheet1.xml"
    cd = -1
    pos = 0
    while True:
        pos = data.find(b"PK\x01\x02", pos)
        assert pos >= 0
        n = int.from_bytes(data[pos + 28:pos + 30], "little")
        if data[pos + 46:pos + 46 + n] == name:
            cd = pos
            break
        pos += 4
    data[cd + 24:cd + 28] = (2000).to_bytes(4, "little")  # central directory: uncompressed size
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(name.decode()).file_size == 2000
    return bytes(data)


def test_xlsx_bomb_lying_about_its_size_is_cut_at_the_declared_size():
    import tracemalloc
    data = lying_bomb()
    tracemalloc.start()
    t = time.monotonic()
    with pytest.raises(MediaError) as e:
        list(read_xlsx(data))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert e.value.key == "list.not_xlsx" and time.monotonic() - t < 10 and peak < 20 * 1024 * 1024


def _zip(files) -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return b.getvalue()


def test_xlsx_is_read_row_by_row():
    """A 50 000-row sheet: the first rows come out before the rest are parsed (openpyxl read-only)."""
    import tracemalloc
    data = xlsx_bytes([[f"8916{i:07d}", f"комментарий {i}"] for i in range(50_000)])
    tracemalloc.start()
    it = read_xlsx(data, max_rows=60_000)
    first = [next(it) for _ in range(10)]
    peak_after_first = tracemalloc.get_traced_memory()[1]
    rest = sum(1 for _ in it)
    tracemalloc.stop()
    assert first[0] == (1, "89160000000", "комментарий 0") and rest == 49_990
    assert peak_after_first < 30 * 1024 * 1024


@pytest.mark.parametrize("encoding,bom", [("utf-8", False), ("utf-8", True), ("cp1251", False)])
@pytest.mark.parametrize("delim", [";", ",", "\t"])
def test_csv_encodings_and_separators(encoding, bom, delim):
    lines = [f"Телефон{delim}Комментарий", f"89161234567{delim}Иванов склад", "", f"+7 916 123-45-68{delim}"]
    data = ("\r\n".join(lines) + "\r\n").encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    assert list(read_csv(data)) == [(2, "89161234567", "Иванов склад"), (4, "+7 916 123-45-68", "")]


def test_csv_decoding_decisions():
    assert decode_text("Привет".encode("cp1251")) == "Привет"
    assert decode_text("Привет".encode("utf-8")) == "Привет"     # strict UTF-8 wins: cp1251 would misread it
    assert list(read_csv("89161234567\n89161234568,Коммент\n")) == [(1, "89161234567", ""),
                                                                   (2, "89161234568", "Коммент")]
    for data, key in ((b"", "list.empty"), (b"\xef\xbb\xbf \r\n", "list.empty"), (b"\x98\x98", "list.encoding")):
        with pytest.raises(MediaError) as e:
            list(read_csv(data))
        assert e.value.key == key


# ---- on the real Asterisk: the callee hears exactly the uploaded message ---------------------------

PLAY_CONTEXT = """[kit-media-test]
exten => listen,1,Answer()
 same => n,Record({heard}.wav,0,12,qxk)
 same => n,Hangup()
exten => play,1,Answer()
 same => n,Playback(${{SOUND}})
 same => n,Hangup()
"""


def spool(asterisk, name: str, sound_name: str) -> None:
    from asterisk_kit.dialer.callfile import verify
    text = ("Channel: Local/listen@kit-media-test\nContext: kit-media-test\nExtension: play\nPriority: 1\n"
            f"Setvar: SOUND={sound_name}\nMaxRetries: 0\nWaitTime: 10\n")
    verify(text)  # the sound name passes the kit's call file line check
    tmp = asterisk.spool_dir / "tmp" / name
    tmp.write_text(text)
    os.rename(tmp, asterisk.spool_dir / "outgoing" / name)


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() or time.time() - path.stat().st_mtime < 1.0:  # Record has finished writing
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


class Events:
    """AMI dialplan events (Newexten) collected while a call runs."""

    def __init__(self, asterisk):
        from asterisk_kit.ami import AmiClient
        self.ami = AmiClient("127.0.0.1", asterisk.ami_port, asterisk.ami_user, asterisk.ami_secret).connect()
        assert self.ami.action("Events", EventMask="dialplan").get("Response") == "Success"

    def until_hangup_of(self, exten: str, seconds: float = 30):
        got, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            m = self.ami.next_event()
            if m.get("Event") == "Newexten" and m.get("Context") == "kit-media-test":
                got.append(m)
                if m.get("Extension") == exten and m.get("Application") == "Hangup":
                    return got
        raise AssertionError(f"no Hangup in {exten} within {seconds}s: {got}")

    def close(self):
        self.ami.close()


@pytest.mark.asterisk
def test_callee_hears_exactly_the_uploaded_message(asterisk, tmp_path):
    store = SoundStore(tmp_path / "data" / "sounds", tmp_path / "data" / "tmp", max_seconds=30)
    upload = speech(tmp_path / "from-phone.m4a", "Добрый день. Это автоматическое сообщение компании. До свидания.")
    snd = store.add_upload(upload.read_bytes())
    other = store.add_upload(tone(tmp_path / "other.mp3", seconds=3, freq=523).read_bytes())
    heard = tmp_path / "heard"
    asterisk.add_test_dialplan("media", PLAY_CONTEXT.format(heard=heard))
    events = Events(asterisk)
    log_before = len(asterisk.messages())
    try:
        spool(asterisk, "media-test.call", snd.playback_name)
        ev = events.until_hangup_of("play")
    finally:
        events.close()
    wait_for(heard.with_suffix(".wav"))
    # Asterisk's own report: Playback ran with exactly the path the store returned ...
    plays = [e for e in ev if e.get("Application") == "Playback"]
    assert [e["AppData"] for e in plays] == [snd.playback_name], plays
    during = asterisk.messages()[log_before:]
    # ... opened that very file (verbose log: "Playing '<path>.<channel's format>'") and found nothing missing.
    assert f"Playing '{snd.playback_name}." in during, during[-2000:]
    assert "Unable to open" not in during and "does not exist" not in during and "Playback failed" not in during
    # What the callee recorded is the uploaded message, sample for sample (allowing for the Local channel).
    got, sent = samples(heard.with_suffix(".wav")), samples(snd.path)
    assert len(got) >= len(sent) - 800
    match, covered = best_match(got, sent)
    assert match > 0.95 and covered > 0.98
    assert best_match(got, samples(other.path))[0] < 0.5          # the comparison can tell messages apart


@pytest.mark.asterisk
def test_missing_sound_is_reported_by_asterisk(asterisk, tmp_path):
    """The negative of the check above: a sound name that is not there shows up in Asterisk's log."""
    heard = tmp_path / "heard"
    asterisk.add_test_dialplan("media", PLAY_CONTEXT.format(heard=heard))
    log_before = len(asterisk.messages())
    events = Events(asterisk)
    try:
        spool(asterisk, "media-missing.call", str(tmp_path / "no-such-sound"))
        events.until_hangup_of("play")
    finally:
        events.close()
    during = asterisk.messages()[log_before:]
    assert "does not exist" in during or "Unable to open" in during, during[-2000:]
