"""Settings of the autodialer: its [dialer] section."""
from __future__ import annotations

import re
from typing import Dict

from ..configtypes import Invalid, Key, Section, int_range, nonempty, regex, text, yes_no


def _callerid(v: str) -> str:
    # It lands in call files: "Name" <digits> or digits only, so no `#`, `;` or line can slip in.
    s = v.strip()
    if s and not re.fullmatch(r'(?:"[A-Za-z0-9 ._\-А-Яа-яЁё]{0,40}" ?)?<[0-9]{1,20}>|[0-9]{1,20}', s):
        raise Invalid('a caller id "Name" <digits> or digits (name: letters, digits, space . _ -)')
    return s




SECTIONS: Dict[str, Section] = {
    "dialer": Section("Autodialer (avtoobzvon): dialplan, call files and pacing.", {
        "dial_out": Key(nonempty, "PJSIP/${NUMBER}@trunk",
                        "Dial string for the outside call; ${NUMBER} is replaced by the number dialled. "
                        "On FreePBX e.g. Local/${NUMBER}@from-internal to use the outbound routes."),
        "ring_seconds": Key(int_range(1, 300), "40", "How long the callee's phone rings."),
        "sound": Key(nonempty, "custom/avtoobzvon", "Sound played on plain calls (no extension, as Playback wants it)."),
        "ivr_prompt": Key(nonempty, "custom/avtoobzvon-ivr", "Prompt played on IVR calls before reading one digit."),
        "ivr_wait_seconds": Key(int_range(1, 60), "7", "Seconds to wait for the digit."),
        "connect_to": Key(text, "", "Dial string the callee is connected to when the pressed digit matches "
                                    "(e.g. Local/100@from-internal); empty: just hang up."),
        "callerid": Key(_callerid, "", "CallerID of the calls, e.g. \"Office\" <84951234567> (empty: the trunk's default).",
                        example='"Office" <84951234567>'),
        "max_retries": Key(int_range(0, 10), "0", "Call file MaxRetries: extra attempts when the callee does not answer."),
        "retry_time": Key(int_range(10, 86400), "300", "Call file RetryTime: seconds between attempts."),
        "wait_time": Key(int_range(5, 300), "45", "Call file WaitTime: seconds Asterisk waits for the call to be answered."),
        "bundle": Key(int_range(1, 1000), "10", "Call files handed to Asterisk per batch."),
        "timeout": Key(int_range(0, 3600), "30", "Seconds of pause between batches."),
        "max_in_progress": Key(int_range(1, 1000), "20", "Never more calls of the autodialer in progress than this "
                                                        "(counted in Asterisk before each batch)."),
        "grace_minutes": Key(int_range(0, 1440), "30", "A scheduled run missed by more than this (PBX or cron down) "
                                                       "is not started late."),
        "number_pattern": Key(regex, "8[0-9]{10}", "Accepted numbers after normalisation (digits only, whole "
                                                     "number); default: Russian 8XXXXXXXXXX."),
        "normalise_plus7": Key(yes_no, "yes", "Rewrite +7XXXXXXXXXX and 7XXXXXXXXXX to 8XXXXXXXXXX before checking."),
        "templates_dir": Key(text, "", "Folder with your own plain.call.j2 / ivr.call.j2 overriding the shipped "
                                       "call file templates (empty: the shipped ones)."),
        "result_wait_seconds": Key(int_range(30, 86400), "600", "After the last batch, how long a run waits "
                                                                "for the outcomes of its calls before it closes."),
    }),
}
