"""Optional text-to-speech for autodialer messages: staff type the text, the kit speaks it in Russian.

Engine: **espeak-ng** (Debian 12 main, package `espeak-ng`, voice `ru`). It is the only Russian
speech synthesizer in Debian 12's main archive: RHVoice (better sounding) is not packaged for
bookworm (`apt-cache policy rhvoice` finds no candidate) and its PyPI wheels are unmaintained
builds, so it is left out. espeak-ng sounds robotic but is intelligible; a real recording remains
the better message, this is for quick notices.

The text goes to espeak-ng on stdin (never on the command line, so a text starting with `-` is
text, not an option; no shell), plain text mode (no SSML). The result is converted by
`SoundStore.add_rendered` exactly like an upload and cached under a hash of (engine, voice, rate,
text): the same text twice is rendered once.

Config (dialer/settings.py): `[dialer] tts_voice` (ru), `tts_rate` (words per minute, 150),
`tts_max_chars` (1000).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from .media_strings import MediaError
from .sounds import Sound, SoundStore

ENGINE = "espeak-ng"
_VOICE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})?(\+[a-z0-9]{1,12})?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Speech:
    def __init__(self, sounds: SoundStore, voice: str = "ru", rate: int = 150, max_chars: int = 1000,
                 timeout: float = 60, exe: str = ENGINE):
        if not _VOICE.fullmatch(voice):
            raise MediaError("tts.voice", voice=voice)
        self.sounds, self.voice, self.rate = sounds, voice, int(rate)
        self.max_chars, self.timeout, self.exe = int(max_chars), float(timeout), exe

    @classmethod
    def from_config(cls, cfg, sounds: SoundStore) -> "Speech":
        d = cfg.get_section("dialer")
        return cls(sounds, voice=str(d.get("tts_voice", "ru")), rate=int(d.get("tts_rate", 150)),
                   max_chars=int(d.get("tts_max_chars", 1000)), timeout=sounds.timeout)

    @staticmethod
    def normalise(text: str) -> str:
        return " ".join(_CONTROL.sub(" ", text or "").split())

    def say(self, text: str) -> Sound:
        """TEXT spoken by the configured voice, as a Sound in the sounds folder (cached)."""
        text = self.normalise(text)
        if not text:
            raise MediaError("tts.empty")
        if len(text) > self.max_chars:
            raise MediaError("tts.too_long", limit=self.max_chars)
        key = json.dumps([ENGINE, self.voice, self.rate, text], ensure_ascii=False).encode("utf-8")
        return self.sounds.add_rendered(key, lambda out: self._render(text, out))

    def _render(self, text: str, out: Path) -> None:
        exe = shutil.which(self.exe)
        if not exe:
            raise MediaError("sound.no_tool", tool=ENGINE)
        args = [exe, "-v", self.voice, "-s", str(self.rate), "-w", str(out), "--stdin"]
        try:
            r = subprocess.run(args, input=text.encode("utf-8"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise MediaError("sound.timeout", limit=f"{self.timeout:g}") from None
        err = r.stderr.decode("utf-8", "replace")
        if r.returncode != 0:
            if "voice" in err.lower():  # "The specified espeak-ng voice does not exist."
                raise MediaError("tts.voice", voice=self.voice)
            raise MediaError("sound.failed", detail=(err.strip().splitlines() or ["espeak-ng failed"])[-1][:200])
