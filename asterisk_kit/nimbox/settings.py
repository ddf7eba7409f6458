"""Settings of the NiMbox CRM push: its [nimbox] section."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Tuple

from ..configtypes import (
    Invalid,
    Key,
    Section,
    choice,
    cron_schedule,
    float_range,
    http_url_or_empty,
    int_range,
    nonempty,
    words,
)


def _rewrite_rules(v: str) -> List[Tuple[str, str]]:
    """`REGEX => REPLACEMENT; REGEX => REPLACEMENT`: applied in order, each once (re.sub count=1)."""
    rules = []
    for part in v.split(";"):
        if not part.strip():
            continue
        pattern, sep, repl = part.partition("=>")
        pattern, repl = pattern.strip(), repl.strip()
        if not sep or not pattern:
            raise Invalid("rules `REGEX => REPLACEMENT` separated by `;`, e.g. ^9(\\d{7})$ => 0212\\1; ^9(.*)$ => \\1")
        try:
            rx = re.compile(pattern)
            rx.sub(repl, "0" * 20, count=1)   # a bad group reference fails here, not at the first call
        except (re.error, IndexError) as e:
            raise Invalid(f"rules `REGEX => REPLACEMENT` (rule {part.strip()!r}: {e})") from None
        if not re.fullmatch(r"[0-9+*#\\]*", re.sub(r"\\g<\w+>|\\\d+", "", repl)):
            raise Invalid(f"rules whose replacement holds only digits, + * # and group references \\1 "
                           f"(rule {part.strip()!r})")
        rules.append((pattern, repl))
    return rules


URL_FIELDS = ("recordingfile", "year", "month", "day", "linkedid")


def _url_template(v: str) -> str:
    s = v.strip()
    if not s:
        return s
    if not re.fullmatch(r"https?://\S+", s):
        raise Invalid("an http:// or https:// URL template, e.g. https://pbx.example.com/rec/{year}/{month}/{day}/{recordingfile}")
    for name in re.findall(r"\{([^{}]*)\}", s):
        if name not in URL_FIELDS:
            raise Invalid(f"a URL template using only {{{'}, {'.join(URL_FIELDS)}}} (found {{{name}}})")
    if re.sub(r"\{[^{}]*\}", "", s).count("{") or re.sub(r"\{[^{}]*\}", "", s).count("}"):
        raise Invalid("a URL template with balanced {placeholders}")
    return s


def _fastagi_address(v: str) -> str:
    s = v.strip()
    if s and not re.fullmatch(r"127\.0\.0\.1:\d{1,5}|localhost:\d{1,5}", s):
        raise Invalid("empty, or 127.0.0.1:PORT (the FastAGI server listens on the loopback only)")
    return s


def _nimbox_validate(v: Dict[str, Any]) -> List[Tuple[str, str]]:
    out = []
    if not v["url"]:
        out.append(("url", "expected the NiMbox address, e.g. https://crm.example.com"))
    if v["hook_timeout"] > 10:
        out.append(("hook_timeout", "at most 10 seconds: the hook runs while Asterisk tears the channel down"))
    return out




SECTIONS: Dict[str, Section] = {
    "nimbox": Section("NiMbox CRM push: each call is sent when it hangs up (AGI hook), kept in an outbox when "
                      "NiMbox cannot be reached, and replicated from the CDR table (`asterisk-kit nimbox sync`).", {
        "url": Key(http_url_or_empty, None, "NiMbox address; the kit calls URL/direct/items/phonecalls/create.",
                   example="https://crm.example.com"),
        "token": Key(nonempty, None, "API token. Better from ASTERISK_KIT_NIMBOX_TOKEN.", secret=True,
                     example="change-me"),
        "initiated_format": Key(choice("local", "offset", "utc", "local-z"), "local-z",
                                "How the call start is sent (NiMbox does not document its zone): local-z = PBX local "
                                "time labelled Z (2026-11-23T18:00:05Z), what the old Perl script sent, so the calls "
                                "it already sent keep their NiMbox key and are not doubled; for a NiMbox that starts "
                                "empty: local = local time without suffix; offset = local time with its UTC offset "
                                "(+03:00); utc = real UTC with Z. The PBX zone is [general] timezone."),
        "destination_rules": Key(_rewrite_rules, "", "Rewriting of the called number, `REGEX => REPLACEMENT` rules "
                                 "separated by `;`, applied in order, each once. The old script's rule (only a number "
                                 "starting with 9 changes: the 9 goes, and the area code is put before exactly 7 "
                                 "remaining digits), with area code 0212: ^9(\\d{7})$ => 0212\\1; ^9(.*)$ => \\1",
                                 example=r"^9(\d{7})$ => 0212\1; ^9(.*)$ => \1"),
        "recording_url": Key(_url_template, "", "Link sent with each call; placeholders {recordingfile}, {year}, "
                             "{month}, {day} (FreePBX monitor layout YYYY/MM/DD, from the file name) and {linkedid}. "
                             "Empty: no link; calls without a recording get none.",
                             example="https://pbx.example.com/monitor/{year}/{month}/{day}/{recordingfile}"),
        "duration": Key(choice("duration", "billsec"), "duration", "Which CDR length is sent: duration "
                        "(from the start, what the old script sent) or billsec (talk time)."),
        "min_destination_length": Key(int_range(0, 40), "7", "Only calls whose CDR dst has at least this many "
                                      "characters are sent (the old script: 7, i.e. outside calls)."),
        "dispositions": Key(words, "", "Only calls with these CDR dispositions (e.g. ANSWERED); empty: all."),
        "fastagi": Key(_fastagi_address, "", "HOST:PORT of `asterisk-kit fastagi` to run the hook through FastAGI "
                       "(busy PBXs: no process start per call); empty: classic AGI (asterisk-kit-agi)."),
        "hook_timeout": Key(float_range(0.1), "1.5", "Seconds the hangup hook waits for NiMbox before it puts "
                            "the call in the outbox (the channel teardown waits for the hook)."),
        "timeout": Key(float_range(0.5), "10", "Seconds per request for `nimbox sync`."),
        "concurrency": Key(int_range(1, 64), "8", "Requests in flight at once during `nimbox sync`."),
        "incremental_hours": Key(int_range(1, 24 * 31), "3",
                                 "`nimbox sync` reads the CDR of the last this many hours."),
        "full_days": Key(int_range(1, 3660), "360", "`nimbox sync --full` reads the CDR of the last this many days."),
        "cron_incremental": Key(cron_schedule, "15 * * * *", "cron schedule of the incremental sync (off: none)."),
        "cron_full": Key(cron_schedule, "0 23 * * *", "cron schedule of the full sync (off: none)."),
    }, validate=_nimbox_validate),
}
