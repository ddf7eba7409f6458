"""Settings of the autodialer: its [dialer] section."""
from __future__ import annotations

import re
from typing import Dict

from ..configtypes import Invalid, Key, Section, int_range, regex, text, yes_no


def _callerid(v: str) -> str:
    # It lands in call files: "Name" <digits> or digits only, so no `#`, `;` or line can slip in.
    s = v.strip()
    if s and not re.fullmatch(r'(?:"[A-Za-z0-9 ._\-А-Яа-яЁё]{0,40}" ?)?<[0-9]{1,20}>|[0-9]{1,20}', s):
        raise Invalid('a caller id "Name" <digits> or digits (name: letters, digits, space . _ -)')
    return s


def _trunk_prefix(v: str) -> str:
    s = v.strip()
    if not re.fullmatch(r"[0-9]{0,4}", s):
        raise Invalid("0 to 4 digits (e.g. 8), or empty for none")
    return s


def _callerids(v: str) -> str:
    for part in (p.strip() for p in v.split(",")):
        if part:
            _callerid(part)
    return v.strip()


def callerid_list(d) -> list:
    """The caller IDs a campaign may use: [dialer] callerid first, then callerids."""
    out = [d["callerid"]] if d["callerid"] else []
    out += [p.strip() for p in d["callerids"].split(",") if p.strip() and p.strip() not in out]
    return out


# ---- values that land in the dialplan as an application argument -------------------------------

_VAR = r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"
# Tech/resource[&Tech/resource]: no `,` (Dial() argument separator), `;` (dialplan comment), parentheses,
# quotes, spaces or `$[`/`${FUNC(`: the value must stay one argument that means what it says.
_CHANNEL = rf"[A-Za-z][A-Za-z0-9]*/(?:[A-Za-z0-9_.@:+*/\-]|{_VAR})+"
_DIAL_TARGET = re.compile(rf"{_CHANNEL}(?:&{_CHANNEL})*")
_SOUND = re.compile(r"[A-Za-z0-9_./\-]+(?:&[A-Za-z0-9_./\-]+)*")
_DIAL_HELP = ("a dial string Tech/resource such as PJSIP/${NUMBER}@trunk or Local/100@from-internal (letters, "
              "digits, _ . @ : + * / -, ${VARIABLE}, several joined by &; no , ; ( ) quotes or spaces: Asterisk "
              "would split or cut the Dial() arguments there)")


def _dial_target(v: str) -> str:
    s = v.strip()
    if s and not _DIAL_TARGET.fullmatch(s):
        raise Invalid(_DIAL_HELP)
    return s


def _dial_out(v: str) -> str:
    s = _dial_target(v)
    if "${NUMBER}" not in s:
        raise Invalid(_DIAL_HELP + ", containing ${NUMBER} where the number dialled goes")
    return s


def _sounds_dir(v: str) -> str:
    # The path goes into Playback(), whose arguments are comma separated (see sounds.SoundStore).
    s = v.strip()
    if s and not re.fullmatch(r"/[A-Za-z0-9/._-]*", s):
        raise Invalid("an absolute path of letters, digits and / . _ - (it goes into Playback()), or empty")
    return s


def _tts_voice(v: str) -> str:
    s = v.strip()
    if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})?(\+[a-z0-9]{1,12})?", s):
        raise Invalid("an espeak-ng voice name such as ru, en-us or ru+f3")
    return s


def _sound(v: str) -> str:
    s = v.strip()
    if not _SOUND.fullmatch(s):
        raise Invalid("a sound name such as custom/avtoobzvon or an absolute path without extension (letters, "
                      "digits, _ . / -, several joined by &)")
    return s


SECTIONS: Dict[str, Section] = {
    "dialer": Section("Autodialer (avtoobzvon): dialplan, call files and pacing.", {
        "dial_out": Key(_dial_out, "PJSIP/${NUMBER}@trunk",
                        "Dial string for the outside call; ${NUMBER} is replaced by the number dialled. "
                        "On FreePBX e.g. Local/${NUMBER}@from-internal to use the outbound routes."),
        "ring_seconds": Key(int_range(1, 300), "40", "How long the callee's phone rings."),
        "sound": Key(_sound, "custom/avtoobzvon", "Sound played on plain calls (no extension, as Playback wants it)."),
        "ivr_prompt": Key(_sound, "custom/avtoobzvon-ivr", "Prompt played on IVR calls before reading one digit."),
        "ivr_wait_seconds": Key(int_range(1, 60), "7", "Seconds to wait for the digit."),
        "connect_to": Key(_dial_target, "", "Dial string the callee is connected to when the pressed digit matches "
                                    "(e.g. Local/100@from-internal); empty: just hang up."),
        "callerid": Key(_callerid, "", "CallerID of the calls, e.g. \"Office\" <84951234567> (empty: the trunk's "
                        "default).",
                        example='"Office" <84951234567>'),
        "callerids": Key(_callerids, "", "Caller IDs a campaign may choose from, separated by commas, e.g. "
                         "\"Office\" <84951234567>, \"Sales\" <84957654321> (empty: only `callerid`).",
                         example='"Office" <84951234567>, "Sales" <84957654321>'),
        "max_retries": Key(int_range(0, 10), "0", "Default for new campaigns: extra attempts after busy, no answer "
                                                  "or failed (the kit re-spools them; call files say MaxRetries: 0)."),
        "retry_time": Key(int_range(10, 86400), "300", "Default for new campaigns: seconds between attempts."),
        "wait_time": Key(int_range(5, 300), "45", "Call file WaitTime: seconds Asterisk waits for the call to be "
                                                 "answered."),
        "bundle": Key(int_range(1, 1000), "10", "Call files handed to Asterisk per batch."),
        "timeout": Key(int_range(0, 3600), "30", "Seconds of pause between batches."),
        "max_in_progress": Key(int_range(1, 1000), "20", "Never more calls of the autodialer in progress than this, "
                                                        "all campaigns together (counted in Asterisk before each "
                                                        "batch); a campaign may set a lower cap of its own."),
        "grace_minutes": Key(int_range(0, 1440), "30", "A scheduled run missed by more than this (PBX or cron down) "
                                                       "is not started late."),
        "number_pattern": Key(regex, "8[0-9]{10}", "Accepted numbers after normalisation (digits only, whole "
                                                     "number); default: Russian 8XXXXXXXXXX."),
        "trunk_prefix": Key(_trunk_prefix, "8", "Put in front of 10-digit numbers (9161234567 -> 89161234567) by "
                                                 "every import, the numbers page and the API; 0-4 digits, empty: "
                                                 "10-digit numbers are checked as they are."),
        "normalise_plus7": Key(yes_no, "yes", "Rewrite +7XXXXXXXXXX and 7XXXXXXXXXX to 8XXXXXXXXXX before checking."),
        "templates_dir": Key(text, "", "Folder with your own plain.call.j2 / ivr.call.j2 overriding the shipped "
                                       "call file templates (empty: the shipped ones)."),
        "result_wait_seconds": Key(int_range(30, 86400), "600", "After the last batch, how long a run waits "
                                                               "for the outcomes of its calls before it closes "
                                                               "(counted once none of its call files is left "
                                                               "in outgoing/, so retries are always waited for)."),
        "stall_seconds": Key(int_range(10, 86400), "120", "A run ends with an error when one of its call files "
                                                         "has been due this long and Asterisk has not picked it "
                                                         "up (pbx_spool not loaded, wrong spool_dir)."),
        "import_max_bytes": Key(int_range(100_000, 500_000_000), "20000000", "Largest list accepted by an import "
                                                                             "through the page (pasted or uploaded), "
                                                                             "in bytes; the web app keeps request "
                                                                             "bodies up to this size in memory."),
        # Messages staff upload or type on the /dialer/sounds page (sounds.SoundStore, tts.Speech).
        "sounds_dir": Key(_sounds_dir, "", "Folder of the messages uploaded on the page, converted to 8 kHz mono "
                                           "WAV (empty: DATA_DIR/sounds). Asterisk must be able to read it."),
        "sound_max_mb": Key(int_range(1, 500), "20", "Largest recording accepted for upload, in MB."),
        "sound_max_seconds": Key(int_range(1, 3600), "300", "Longest message accepted, in seconds (uploaded or "
                                                            "spoken)."),
        "sound_convert_timeout": Key(int_range(5, 3600), "60", "Seconds ffmpeg (and espeak-ng) may take for one "
                                                               "message before it is stopped."),
        "tts_voice": Key(_tts_voice, "ru", "espeak-ng voice of the text-to-speech messages (ru: Russian; e.g. "
                                           "ru+f3 for a female variant)."),
        "tts_rate": Key(int_range(80, 450), "150", "Speed of the text-to-speech messages, words per minute."),
        "tts_max_chars": Key(int_range(1, 10000), "1000", "Longest text accepted for a text-to-speech message, in "
                                                          "characters."),
    }),
}
