"""Messages the autodialer plays: staff recordings converted to what Asterisk plays, kept by content hash.

Staff upload whatever their phone made (mp3, wav, ogg, m4a, …). `SoundStore.add_upload` writes it to
a temp file in `data_dir/tmp`, converts it with ffmpeg (argument list, no shell, with a timeout) to
8 kHz mono 16-bit PCM WAV, the format Asterisk's format_wav plays without transcoding on narrowband
calls, checks it (not empty, not too big, not too long, not silent) and renames it into the sounds
folder as `<id>.wav`, where `id` is a hash of the uploaded bytes: the user's file name never
reaches the disk, and the same upload twice is one file. The converted WAV is also the preview for
the browser (every browser plays PCM WAV), so staff hear exactly what the callee will hear.

`Sound.playback_name` is the absolute path without extension, the form Playback() and Read() take.
Because Playback's arguments are comma separated, the sounds folder must be a plain path
(letters, digits, `/._-`); ids are hex.

ffmpeg reads untrusted input here, so it may only open the one temp file (`-protocol_whitelist file`)
with an audio demuxer from a short list (`-format_whitelist`): an uploaded HLS/concat playlist that
points at other local files is refused instead of being followed.

Config (dialer/settings.py): `[dialer] sounds_dir` (empty: DATA_DIR/sounds), `sound_max_mb` (20),
`sound_max_seconds` (300), `sound_convert_timeout` (60 s); temp files in DATA_DIR/tmp.
"""
from __future__ import annotations

import array
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Union

from ..storage import chown_to
from .media_strings import MediaError

log = logging.getLogger(__name__)

RATE = 8000
# Bumped when the conversion changes, so a new conversion never reuses an old file's id.
CONVERSION = b"wav-8k-mono-s16-v1"
# Input demuxers ffmpeg may use (names as ffmpeg lists them; mp4/m4a/3gp/mov share "mov", wma is "asf",
# webm is "matroska", opus is in "ogg"). Playlist-like demuxers (hls, concat, …) are deliberately absent.
INPUT_FORMATS = "wav,w64,mp3,ogg,mov,mp4,m4a,3gp,matroska,webm,flac,aac,amr,caf,aiff,asf"
_ID = re.compile(r"[0-9a-f]{32}")
_SAFE_DIR = re.compile(r"/[A-Za-z0-9/._-]*")
# ffmpeg's own words for "this is not (decodable) audio", as opposed to a failure of the machine.
_NOT_AUDIO = re.compile(r"Invalid data found|matches no streams|not on whitelist|could not find codec parameters|"
                        r"moov atom not found|Invalid argument|no streams|Output file .* does not contain any stream|"
                        r"Error while decoding|could not find corresponding|End of file", re.I)
_TEMP_PREFIXES = ("upload-", "render-", "converted-")
SILENCE_PEAK = 16  # of 32767: below this the recording is digital silence (a muted phone)


@dataclass(frozen=True)
class Sound:
    id: str
    path: Path          # the .wav Asterisk plays; also the browser preview
    seconds: float

    @property
    def playback_name(self) -> str:
        """What Playback()/Read() take: the absolute path without the extension."""
        return str(self.path.with_suffix(""))

    preview_mime = "audio/wav"


Source = Union[bytes, BinaryIO]


class SoundStore:
    def __init__(self, folder: Union[str, Path], tmp_dir: Union[str, Path], max_bytes: int = 20 * 1024 * 1024,
                 max_seconds: float = 300, timeout: float = 60, run_user: str = "", ffmpeg: str = "ffmpeg"):
        folder = Path(folder).absolute()
        if not _SAFE_DIR.fullmatch(str(folder)):
            raise ValueError(f"sounds folder {folder}: only letters, digits and / . _ - are allowed "
                             "(the path goes into Playback(), whose arguments are comma separated)")
        self.folder = folder
        self.tmp_dir = Path(tmp_dir)
        self.max_bytes = int(max_bytes)
        self.max_seconds = float(max_seconds)
        self.timeout = float(timeout)
        self.run_user = run_user
        self.ffmpeg = ffmpeg

    @classmethod
    def from_config(cls, cfg) -> "SoundStore":
        d = cfg.get_section("dialer")
        data = Path(cfg.data_dir)
        return cls(d.get("sounds_dir") or data / "sounds", data / "tmp",
                   max_bytes=int(float(d.get("sound_max_mb", 20)) * 1024 * 1024),
                   max_seconds=float(d.get("sound_max_seconds", 300)),
                   timeout=float(d.get("sound_convert_timeout", 60)),
                   run_user=cfg.get("asterisk", "run_user", "") or "")

    # -- lookups --
    def path(self, sound_id: str) -> Path:
        if not isinstance(sound_id, str) or not _ID.fullmatch(sound_id):
            raise MediaError("sound.unknown")
        return self.folder / f"{sound_id}.wav"

    def get(self, sound_id: str) -> Sound:
        p = self.path(sound_id)
        try:
            with wave.open(str(p), "rb") as w:
                return Sound(sound_id, p, w.getnframes() / w.getframerate())
        except FileNotFoundError:
            raise MediaError("sound.unknown") from None

    def exists(self, sound_id: str) -> bool:
        return self.path(sound_id).exists()

    def delete(self, sound_id: str) -> None:
        try:
            self.path(sound_id).unlink()
        except FileNotFoundError:
            pass

    # -- adding --
    def add_upload(self, src: Source) -> Sound:
        """A staff upload (bytes, or a binary file object read in chunks) -> the converted Sound.
        Raises MediaError for empty, oversized, non-audio, too long or silent input."""
        self._dirs()
        fd, raw = tempfile.mkstemp(prefix="upload-", dir=str(self.tmp_dir))
        try:
            h = hashlib.sha256(b"upload\0" + CONVERSION + b"\0")
            size = 0
            with os.fdopen(fd, "wb") as f:
                for chunk in _chunks(src):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise MediaError("sound.too_big", limit_mb=_mb(self.max_bytes))
                    h.update(chunk)
                    f.write(chunk)
            if size == 0:
                raise MediaError("sound.empty")
            sound_id = h.hexdigest()[:32]
            if self.exists(sound_id):
                return self.get(sound_id)
            return self._convert_into(Path(raw), sound_id)
        finally:
            _unlink(raw)

    def add_rendered(self, key: bytes, render: Callable[[Path], None]) -> Sound:
        """Audio made by the kit (text-to-speech): KEY identifies it (cached by its hash); RENDER(path)
        writes any audio ffmpeg reads to path, which is then converted like an upload."""
        self._dirs()
        sound_id = hashlib.sha256(b"rendered\0" + CONVERSION + b"\0" + key).hexdigest()[:32]
        if self.exists(sound_id):
            return self.get(sound_id)
        fd, raw = tempfile.mkstemp(prefix="render-", suffix=".wav", dir=str(self.tmp_dir))
        os.close(fd)
        try:
            render(Path(raw))
            return self._convert_into(Path(raw), sound_id)
        finally:
            _unlink(raw)

    # -- conversion --
    def _dirs(self) -> None:
        for d, mode in ((self.folder, 0o750), (self.tmp_dir, 0o700)):
            if not d.is_dir():
                d.mkdir(parents=True, exist_ok=True)
                os.chmod(d, mode)
                if d == self.folder:
                    chown_to(d, self.run_user)
        self._sweep()

    def _sweep(self, max_age: float = 3600) -> None:
        """Temp files of conversions killed midway (a newer one may still be in use by another process)."""
        now = time.time()
        for p in self.tmp_dir.glob("*"):
            if p.name.startswith(_TEMP_PREFIXES):
                try:
                    if now - p.stat().st_mtime > max_age:
                        p.unlink()
                except FileNotFoundError:
                    pass

    def _convert_into(self, raw: Path, sound_id: str) -> Sound:
        fd, out = tempfile.mkstemp(prefix="converted-", suffix=".wav", dir=str(self.tmp_dir))
        os.close(fd)
        try:
            self._ffmpeg(raw, Path(out))
            seconds = self._check(Path(out))
            os.chmod(out, 0o640)
            chown_to(Path(out), self.run_user)
            final = self.path(sound_id)
            # Durable before it is visible: the id names only complete conversions.
            with open(out, "rb") as f:
                os.fsync(f.fileno())
            if os.stat(out).st_dev == os.stat(self.folder).st_dev:
                os.replace(out, final)
            else:  # tmp on another filesystem: copy next to the target, then rename there
                part = final.with_suffix(".part")
                shutil.copyfile(out, part)
                os.chmod(part, 0o640)
                chown_to(part, self.run_user)
                with open(part, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(part, final)
            _fsync_dir(self.folder)
            log.info("sound %s stored (%.1f s)", sound_id, seconds)
            return Sound(sound_id, final, seconds)
        finally:
            _unlink(out)

    def _ffmpeg(self, src: Path, dst: Path) -> None:
        exe = shutil.which(self.ffmpeg)
        if not exe:
            raise MediaError("sound.no_tool", tool="ffmpeg")
        args = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1",
                "-protocol_whitelist", "file", "-format_whitelist", INPUT_FORMATS, "-i", str(src),
                "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1",
                # a little over the limit, so "too long" is measured, not silently cut
                "-t", f"{self.max_seconds + 1:g}",
                "-ac", "1", "-ar", str(RATE), "-c:a", "pcm_s16le", "-bitexact", "-f", "wav", "-y", str(dst)]
        try:
            r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise MediaError("sound.timeout", limit=f"{self.timeout:g}") from None
        if r.returncode != 0:
            err = r.stderr.decode("utf-8", "replace").replace(str(src), "input").replace(str(dst), "output")
            log.info("ffmpeg refused an input (exit %s): %s", r.returncode, err.strip()[-500:])
            if _NOT_AUDIO.search(err) or not err.strip():
                raise MediaError("sound.not_audio")
            raise MediaError("sound.failed", detail=(err.strip().splitlines() or ["?"])[-1][:200])

    def _check(self, wav_path: Path) -> float:
        try:
            with wave.open(str(wav_path), "rb") as w:
                if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, RATE):
                    raise MediaError("sound.failed", detail="unexpected output format")
                frames = w.getnframes()
                data = w.readframes(frames)
        except (wave.Error, EOFError):
            raise MediaError("sound.not_audio") from None
        if frames == 0:
            raise MediaError("sound.silent")
        if frames > self.max_seconds * RATE + RATE // 50:  # 20 ms of slack for resampler rounding
            raise MediaError("sound.too_long", limit=f"{self.max_seconds:g}")
        samples = array.array("h")
        samples.frombytes(data[: len(data) // 2 * 2])
        if max(max(samples), -min(samples)) < SILENCE_PEAK:
            raise MediaError("sound.silent")
        return frames / RATE


def _chunks(src: Source, size: int = 1 << 16):
    if isinstance(src, (bytes, bytearray, memoryview)):
        mv = memoryview(src)
        for i in range(0, len(mv), size):
            yield bytes(mv[i:i + size])
        return
    while True:
        chunk = src.read(size)
        if not chunk:
            return
        yield chunk


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):g}"


def _unlink(path: Union[str, Path]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(path: Path) -> None:
    fd: Optional[int] = None
    try:
        fd = os.open(str(path), os.O_RDONLY)
        os.fsync(fd)
    except OSError:
        pass
    finally:
        if fd is not None:
            os.close(fd)
