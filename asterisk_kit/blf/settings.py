"""Settings of the BLF panel: its [blf] section."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Tuple

from ..configtypes import Invalid, Key, Section, float_range, int_range, networks, text, words, yes_no


def _context(v: str) -> str:
    s = v.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,79}", s):
        raise Invalid("a dialplan context name (letters, digits, _ . -)")
    return s


def _phone_channel(v: str) -> str:
    # Goes into the rendered dialplan (Dial) and AMI fields: a fixed alphabet, {exten} exactly once.
    s = v.strip()
    if not re.fullmatch(r"[A-Za-z0-9_./@\-]*\{exten\}[A-Za-z0-9_./@\-]*", s):
        raise Invalid("a channel with {exten} once, e.g. PJSIP/{exten} (letters, digits, _ . / @ -)")
    return s


def _actions_validate(v: Dict[str, Any]) -> List[Tuple[str, str]]:
    if v.get("action_ami_user") and not v.get("action_ami_secret"):
        return [("action_ami_secret", "required when action_ami_user is set")]
    return []


# Empty values (the defaults) skip blf.states: every config load parses [blf]'s defaults.

def _blf_patterns(v: str) -> List[str]:
    items = words(v)
    if not items:
        return items
    from .states import PatternError, compile_patterns
    try:
        compile_patterns(items)
    except PatternError as e:
        raise Invalid(f"extensions, ranges 100-199 or patterns _1XX ({e})") from None
    return items


def _blf_groups(v: str) -> str:
    if not v.strip():
        return v
    from .states import PatternError, parse_groups
    try:
        parse_groups(v)
    except PatternError as e:
        raise Invalid(f"groups `Title: 101-110, 120; Other title: _2XX` ({e})") from None
    return v


def _blf_names(v: str) -> str:
    if not v.strip():
        return v
    from .states import PatternError, parse_names
    try:
        parse_names(v)
    except PatternError as e:
        raise Invalid(f"names `101: Name; 102: Other name` ({e})") from None
    return v




SECTIONS: Dict[str, Section] = {
    "blf": Section("BLF panel: `asterisk-kit blf run` (one AMI connection -> memcached) and the /blf page.", {
        "contexts": Key(words, "ext-local", "Dialplan contexts whose hints are shown (FreePBX: ext-local)."),
        "include": Key(_blf_patterns, "", "Only these extensions (101, ranges 100-199, patterns _1XX); empty: all."),
        "exclude": Key(_blf_patterns, "", "Never these extensions (same forms)."),
        "groups": Key(_blf_groups, "", "Groups on the page, in this order: `Sales: 101-110, 120; Support: _2XX`. "
                                       "Extensions in no group are shown last.",
                      example="Reception: 100-109; Sales: _2XX"),
        "names": Key(_blf_names, "", "Names from the config, `101: Olga; 102: Ivan`; they win over MySQL's."),
        "names_from_mysql": Key(yes_no, "yes", "Read names from FreePBX's users table when [mysql] is configured."),
        "names_refresh_seconds": Key(int_range(10, 86400), "300", "How often the names are read again."),
        "anonymous_networks": Key(networks, "", "Networks allowed to view /blf without logging in (wall "
                                                 "screens), e.g. 192.168.1.50/32; empty: login required."),
        "heartbeat_seconds": Key(float_range(0.2), "1", "The daemon writes its heartbeat this often."),
        "stale_seconds": Key(float_range(1), "5", "The page shows `stale` when the heartbeat is older than this."),
        "ping_seconds": Key(float_range(0.5), "2", "AMI Ping interval; no answer within [asterisk] ami_timeout "
                                                   "means the link is dead."),
        "resync_seconds": Key(int_range(10, 86400), "60", "A fresh ExtensionStateList this often (a `dialplan reload` "
                                                           "that only adds hints sends no event)."),
        "reconnect_max_seconds": Key(int_range(1, 3600), "30", "Longest pause between AMI reconnection attempts."),
        "max_viewers": Key(int_range(1, 10000), "200", "Live (SSE) viewers served at once per web process; more "
                                                        "get 503 and retry."),
        "calls": Key(yes_no, "yes", "Operator panel: follow calls (other party, direction, queue, talk time), "
                                    "queues and parked calls; needs the AMI user of manager/asterisk-kit-panel.conf. "
                                    "no: extension states only."),
        "anonymous_see_numbers": Key(yes_no, "no", "Wall screens of anonymous_networks see outside callers' "
                                                   "numbers (default: names only)."),
        "missed_refresh_seconds": Key(int_range(5, 3600), "30", "Missed calls today are read from the CDR this "
                                                                "often (per web process)."),
        "poll_ms": Key(int_range(10, 5000), "50", "The web process checks memcached for a new version this often."),
        # Panel actions (click-to-dial, transfer, pickup, hangup, queue pause): a second AMI user that
        # only the web app holds, never the read-only daemon; empty: no actions.
        "action_ami_user": Key(text, "", "AMI user of the panel's actions (manager/asterisk-kit-panel-actions.conf: "
                                         "write = originate,call,agent,reporting); empty: actions disabled."),
        "action_ami_secret": Key(text, "", "Secret of that user. Better from ASTERISK_KIT_BLF_ACTION_AMI_SECRET.",
                                 secret=True),
        "phone_channel": Key(_phone_channel, "PJSIP/{exten}", "Device of an extension's phone; {exten} is the "
                                                              "extension (finds its calls, rings it on "
                                                              "click-to-dial)."),
        "originate_context": Key(_context, "asterisk-kit-panel-ring", "Context of click-to-dial's first leg "
                                                                     "(Local/EXT@this); the shipped one only rings "
                                                                     "phone_channel."),
        "dial_context": Key(_context, "from-internal", "Context that dials the target of click-to-dial, transfer "
                                                       "and pickup (FreePBX: from-internal)."),
        "ring_seconds": Key(int_range(5, 120), "30", "How long click-to-dial rings the user's own phone."),
        "queue_interface": Key(_phone_channel, "Local/{exten}@from-queue/n",
                               "Queue member interface of an extension (FreePBX: Local/{exten}@from-queue/n)."),
        "actions_per_minute": Key(int_range(1, 1000), "20", "Panel actions one user may send per minute; more: "
                                                            "HTTP 429."),
    }, validate=_actions_validate),
}
