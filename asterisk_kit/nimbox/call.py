"""A call as NiMbox gets it: the fields of one create request, built the same way from the hangup
hook's arguments and from a CDR row, so both produce the same uniqueness key
(initiated, source, destination) for the same call and NiMbox never gets it twice.

- initiated: the CDR start (calldate) in the PBX zone ([general] timezone), whole seconds (floored,
  as the CDR table stores it), formatted as [nimbox] initiated_format says.
- destination: CDR dst after [nimbox] destination_rules.
- url: [nimbox] recording_url with the FreePBX monitor date (YYYY/MM/DD from the 4th `-` part of
  the recording file name) filled in.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Tuple
from urllib.parse import quote

# What may reach NiMbox (and our store) from a number or a file name: allow-listed, never trusted.
_NUMBER_RE = re.compile(r"[0-9+*#]{1,40}")
_FILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]{0,200}")
_LINKEDID_RE = re.compile(r"[A-Za-z0-9._\-]{1,64}")


class BadCall(ValueError):
    """The hook's arguments or a CDR row cannot make a call (said why). REASON is short and fixed
    (counted per reason in the sync's summary); the message adds the values."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Call:
    initiated: str          # as sent
    source: str
    destination: str        # rewritten
    duration: int
    url: str
    linkedid: str
    calldate: str           # local naive ISO (YYYY-MM-DDTHH:MM:SS), for pruning and delete

    @property
    def key(self) -> Tuple[str, str, str]:
        return (self.initiated, self.source, self.destination)

    def params(self) -> Dict[str, str]:
        p = {"initiated": self.initiated, "source": self.source, "destination": self.destination,
             "duration": str(self.duration)}
        if self.url:
            p["url"] = self.url
        return p


def clean_number(value: Any) -> str:
    """Digits, + * # only (what a CDR src/dst holds for a real number); anything else -> ''."""
    s = str(value or "").strip()
    return s if _NUMBER_RE.fullmatch(s) else ""


def rewrite(number: str, rules: Iterable[Tuple[str, str]]) -> str:
    for pattern, repl in rules:
        number = re.sub(pattern, repl, number, count=1)
    return number


def pbx_zone(cfg):
    """tzinfo of the PBX ([general] timezone); None = the system's local zone."""
    name = cfg["general"]["timezone"]
    if name == "local":
        return None
    from zoneinfo import ZoneInfo
    return ZoneInfo(name)


def format_initiated(local: dt.datetime, fmt: str, zone=None) -> str:
    """LOCAL: naive PBX local time of the call start (whole seconds)."""
    if fmt == "local":
        return local.strftime("%Y-%m-%dT%H:%M:%S")
    if fmt == "local-z":
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    # fold=0: an ambiguous autumn hour is read as its first occurrence.
    aware = local.astimezone() if zone is None else local.replace(tzinfo=zone)
    if fmt == "offset":
        return aware.isoformat(timespec="seconds")
    if fmt == "utc":
        return aware.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise ValueError(f"unknown initiated_format {fmt!r}")


def monitor_date(recordingfile: str, fallback: dt.datetime) -> Tuple[str, str, str]:
    """FreePBX stores recordings under <monitor>/YYYY/MM/DD/ with the date from the 4th `-` part of
    the name (out-84951234567-101-20261123-180005-1700000000.12.wav); else the call's date."""
    parts = recordingfile.split("-")
    if len(parts) >= 4 and re.fullmatch(r"\d{8}", parts[3]):
        d = parts[3]
        try:
            dt.date(int(d[:4]), int(d[4:6]), int(d[6:]))
            return d[:4], d[4:6], d[6:]
        except ValueError:
            pass
    return fallback.strftime("%Y"), fallback.strftime("%m"), fallback.strftime("%d")


def recording_url(template: str, recordingfile: str, linkedid: str, local: dt.datetime) -> str:
    if not template or not recordingfile:
        return ""
    y, m, d = monitor_date(recordingfile, local)
    values = {"recordingfile": quote(recordingfile), "year": y, "month": m, "day": d, "linkedid": quote(linkedid)}
    return re.sub(r"\{(\w+)\}", lambda mo: values[mo.group(1)], template)


class CallBuilder:
    """Turns raw values (hook arguments or a CDR row) into a Call, per the [nimbox] settings."""

    def __init__(self, cfg) -> None:
        n = cfg["nimbox"]
        self.fmt = n["initiated_format"]
        self.zone = pbx_zone(cfg)
        self.rules: List[Tuple[str, str]] = n["destination_rules"]
        self.url_template = n["recording_url"]
        self.duration_field = n["duration"]
        self.min_len = n["min_destination_length"]
        self.dispositions = {d.upper() for d in n["dispositions"]}

    def qualifies(self, dst_raw: str, disposition: str) -> bool:
        """The configured filter, on the raw CDR dst (before rewriting), like the SQL of the sync."""
        if len(dst_raw) < self.min_len:
            return False
        return not self.dispositions or (disposition or "").upper() in self.dispositions

    def local_from_epoch(self, epoch: float) -> dt.datetime:
        secs = int(epoch)  # floor: the CDR table keeps whole seconds of the same instant
        if self.zone is None:
            return dt.datetime.fromtimestamp(secs)
        return dt.datetime.fromtimestamp(secs, self.zone).replace(tzinfo=None)

    def build(self, local: dt.datetime, src: str, dst: str, duration: int, billsec: int,
              recordingfile: str, linkedid: str) -> Call:
        source, dst_clean = clean_number(src), clean_number(dst)
        if not dst_clean:
            raise BadCall("destination not a number", f"destination {dst!r} is not a phone number")
        if not source:
            raise BadCall("source not a number", f"source {src!r} is not a phone number")
        destination = rewrite(dst_clean, self.rules)
        if not clean_number(destination):
            raise BadCall("rewritten destination not a number",
                          f"destination {dst!r} rewritten to {destination!r}, not a phone number")
        rec = recordingfile.strip() if recordingfile else ""
        if rec and not _FILE_RE.fullmatch(rec):
            rec = ""   # an odd name gets no link rather than a broken or injected one
        linked = linkedid if linkedid and _LINKEDID_RE.fullmatch(linkedid) else ""
        local = local.replace(microsecond=0)
        length = billsec if self.duration_field == "billsec" else duration
        return Call(initiated=format_initiated(local, self.fmt, self.zone), source=source, destination=destination,
                    duration=max(int(length or 0), 0), url=recording_url(self.url_template, rec, linked, local),
                    linkedid=linked, calldate=local.strftime("%Y-%m-%dT%H:%M:%S"))

    def from_cdr(self, row: Dict[str, Any]) -> Call:
        return self.build(row["calldate"], row["src"], row["dst"], row["duration"], row["billsec"],
                          row.get("recordingfile") or "", row.get("linkedid") or row.get("uniqueid") or "")
