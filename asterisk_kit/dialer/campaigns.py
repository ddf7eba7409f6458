"""A campaign's settings: what staff set on its page, checked, and resolved against [dialer] defaults.

Stored as JSON in dialer_campaigns.settings with only the keys staff set; `resolve` fills the rest from
the config, and a run keeps the resolved copy (so every attempt of a run uses the same caller ID and
message even if the campaign is edited meanwhile). Every value that reaches a call file or the
dialplan is allow-listed here and checked again when the call file is rendered.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Tuple

from ..configtypes import Invalid
from .settings import _dial_target, _sound, callerid_list

OUTCOMES = ("busy", "no_answer", "failed")
# field -> (low, high) for the integer settings; units are on the page
_INTS = {"bundle": (1, 1000), "pause": (0, 3600), "max_in_progress": (1, 1000), "wait_time": (5, 300)}
_RETRY_ATTEMPTS = (0, 10)
_RETRY_MINUTES = (1, 1440)


def field_range(field: str) -> Tuple[int, int]:
    """(low, high) of an integer field of the form (for the page's hints and messages)."""
    if field.startswith("retry_"):
        return _RETRY_ATTEMPTS if field.endswith("_n") else _RETRY_MINUTES
    return _INTS[field]


class BadSetting(ValueError):
    def __init__(self, field: str, key: str, text: str):
        super().__init__(text)
        self.field, self.key = field, key


def defaults(cfg) -> Dict[str, Any]:
    d = cfg["dialer"]
    retry = [d["max_retries"], max(1, round(d["retry_time"] / 60))]
    return {"sound": d["sound"], "ivr_prompt": d["ivr_prompt"], "connect_to": d["connect_to"],
            "callerid": d["callerid"], "bundle": d["bundle"], "pause": d["timeout"],
            "max_in_progress": d["max_in_progress"], "wait_time": d["wait_time"], "optout_digit": "",
            "ivr_digit": "", "retries": {o: list(retry) for o in OUTCOMES}, "retry_seconds": None}


def resolve(cfg, stored: Dict[str, Any]) -> Dict[str, Any]:
    """The campaign's settings with the config's defaults for what it does not set; the pace is capped by
    the PBX-wide [dialer] max_in_progress."""
    out = defaults(cfg)
    for k, v in (stored or {}).items():
        if k in out and v not in (None, ""):
            out[k] = v
    out["max_in_progress"] = min(int(out["max_in_progress"]), cfg["dialer"]["max_in_progress"])
    # Without a per-outcome table (a list from before campaigns) the legacy retry_time in seconds is kept exact.
    if not (stored or {}).get("retries") and out["retry_seconds"] is None:
        out["retry_seconds"] = cfg["dialer"]["retry_time"]
    return out


def retry_rule(settings: Dict[str, Any], result: str) -> Tuple[int, float]:
    """(extra attempts, delay in seconds) for an outcome; answered and others: no retry."""
    if result not in OUTCOMES:
        return 0, 0.0
    n, minutes = settings["retries"][result]
    delay = settings["retry_seconds"] if settings.get("retry_seconds") else minutes * 60
    return int(n), float(delay)


def check_form(cfg, form: Dict[str, str]) -> Tuple[Dict[str, Any], Dict[str, BadSetting]]:
    """The campaign form (field -> text) -> (settings to store, errors by field). Empty = the default."""
    errors: Dict[str, BadSetting] = {}
    out: Dict[str, Any] = {}

    def bad(field, key, text):
        errors[field] = BadSetting(field, key, text)

    for field, check in (("sound", _sound), ("ivr_prompt", _sound), ("connect_to", _dial_target)):
        raw = (form.get(field) or "").strip()
        if raw:
            try:
                out[field] = check(raw)
                if "$" in raw:
                    raise Invalid("no variables here")
            except Invalid as e:
                bad(field, f"campaign.{field}.bad", str(e))
    cid = (form.get("callerid") or "").strip()
    if cid:
        if cid not in callerid_list(cfg["dialer"]):
            bad("callerid", "campaign.callerid.bad", "not one of the caller IDs allowed by [dialer] callerids")
        else:
            out["callerid"] = cid
    for field, (lo, hi) in _INTS.items():
        raw = (form.get(field) or "").strip()
        if raw:
            if not re.fullmatch(r"[0-9]{1,6}", raw) or not lo <= int(raw) <= hi:
                bad(field, "campaign.int.bad", f"a whole number {lo}..{hi}")
            else:
                out[field] = int(raw)
    for field in ("optout_digit", "ivr_digit"):
        digit = (form.get(field) or "").strip()
        if digit:
            if not re.fullmatch(r"[0-9]", digit):
                bad(field, "digit.bad", "one digit 0-9 or empty")
            else:
                out[field] = digit
    if out.get("ivr_digit") and out.get("ivr_digit") == out.get("optout_digit"):
        bad("optout_digit", "campaign.optout.same", "the opt-out digit must differ from the IVR digit")
    retries = {}
    for o in OUTCOMES:
        n_raw = (form.get(f"retry_{o}_n") or "").strip() or "0"
        m_raw = (form.get(f"retry_{o}_min") or "").strip() or "5"
        ok_n = re.fullmatch(r"[0-9]{1,3}", n_raw) and _RETRY_ATTEMPTS[0] <= int(n_raw) <= _RETRY_ATTEMPTS[1]
        ok_m = re.fullmatch(r"[0-9]{1,5}", m_raw) and _RETRY_MINUTES[0] <= int(m_raw) <= _RETRY_MINUTES[1]
        if not ok_n:
            bad(f"retry_{o}_n", "campaign.int.bad", "0..10 attempts")
        if not ok_m:
            bad(f"retry_{o}_min", "campaign.int.bad", "1..1440 minutes")
        if ok_n and ok_m:
            retries[o] = [int(n_raw), int(m_raw)]
    if len(retries) == len(OUTCOMES):
        out["retries"] = retries
    return out, errors


def form_values(cfg, stored: Dict[str, Any]) -> Dict[str, str]:
    """The form's fields filled from the stored settings (retries shown resolved)."""
    r = resolve(cfg, stored)
    vals = {k: str(stored.get(k, "")) for k in ("sound", "ivr_prompt", "connect_to", "callerid", "optout_digit",
                                                 "ivr_digit", *_INTS)}
    for o in OUTCOMES:
        n, m = r["retries"][o]
        vals[f"retry_{o}_n"], vals[f"retry_{o}_min"] = str(n), str(m)
    return vals
