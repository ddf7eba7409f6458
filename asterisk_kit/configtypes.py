"""Value types of the config (each parses one ini string or raises Invalid saying what it expects),
and the Key / Section declarations every settings module uses.

Cheap to import on purpose: the AGI path loads every capability's settings module, which only
import this file.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple


class Invalid(ValueError):
    """Raised by a type parser; its message says what was expected."""


# ---- value types -------------------------------------------------------------------------------

def text(v: str) -> str:
    return v


def nonempty(v: str) -> str:
    if not v.strip():
        raise Invalid("a non-empty value")
    return v.strip()


def int_range(lo: Optional[int] = None, hi: Optional[int] = None) -> Callable[[str], int]:
    def parse(v: str) -> int:
        desc = "an integer" + (f" from {lo}" if lo is not None else "") + (f" to {hi}" if hi is not None else "")
        try:
            n = int(v.strip())
        except ValueError:
            raise Invalid(desc) from None
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise Invalid(desc)
        return n
    parse.__doc__ = "integer"
    return parse


def float_range(lo: float = 0.0) -> Callable[[str], float]:
    def parse(v: str) -> float:
        try:
            n = float(v.strip())
        except ValueError:
            raise Invalid(f"a number >= {lo:g}") from None
        if n < lo:
            raise Invalid(f"a number >= {lo:g}")
        return n
    return parse


_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def yes_no(v: str) -> bool:
    s = v.strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise Invalid("yes or no")


def choice(*options: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        s = v.strip()
        if s not in options:
            raise Invalid("one of " + ", ".join(options))
        return s
    return parse


def path(v: str) -> Path:
    s = v.strip()
    if not s:
        raise Invalid("a path")
    return Path(s).expanduser()


def words(v: str) -> List[str]:
    return [p.strip() for p in re.split(r"[,\s]+", v) if p.strip()]


def hostports(v: str) -> List[str]:
    items = words(v)
    if not items:
        raise Invalid("one or more host:port")
    for it in items:
        host, _, port = it.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise Invalid("host:port entries separated by commas, e.g. 127.0.0.1:11211")
    return items


def networks(v: str) -> List[Any]:
    nets = []
    for it in words(v):
        try:
            nets.append(ipaddress.ip_network(it, strict=False))
        except ValueError:
            raise Invalid("IP networks separated by commas, e.g. 192.168.1.0/24") from None
    return nets


def hhmm(v: str) -> str:
    s = v.strip()
    m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", s)
    if not m:
        raise Invalid("a time HH:MM")
    return s


def timezone(v: str) -> str:
    s = v.strip()
    if s in ("", "local"):
        return "local"
    try:
        from zoneinfo import ZoneInfo
        ZoneInfo(s)
    except Exception:
        raise Invalid("a time zone name such as Europe/Moscow, or local") from None
    return s


def loglevel(v: str) -> str:
    s = v.strip().upper()
    if s not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise Invalid("one of DEBUG, INFO, WARNING, ERROR")
    return s


def regex(v: str) -> str:
    try:
        re.compile(v)
    except re.error as e:
        raise Invalid(f"a valid regular expression ({e})") from None
    return v


def language(v: str) -> str:
    return choice("ru", "en")(v)


def date_or_empty(v: str) -> str:
    s = v.strip()
    if s:
        import datetime
        try:
            datetime.date.fromisoformat(s)
        except ValueError:
            raise Invalid("a date YYYY-MM-DD, or empty") from None
    return s


def http_url_or_empty(v: str) -> str:
    s = v.strip()
    if s and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", s):
        raise Invalid("an http:// or https:// URL")
    return s.rstrip("/")


def cron_schedule(v: str) -> str:
    s = " ".join(v.split())
    if s in ("", "off"):
        return ""
    if not re.fullmatch(r"(?:[0-9*/,\-]+ ){4}[0-9*/,\-A-Za-z]+", s):
        raise Invalid("a cron schedule of five fields such as `15 * * * *`, or off")
    return s



# ---- declarations --------------------------------------------------------------------------------

@dataclass
class Key:
    parse: Callable[[str], Any]
    default: Optional[str]          # None = required when the section is present
    help: str
    secret: bool = False
    example: Optional[str] = None   # value shown in the example file when it differs from default


@dataclass
class Section:
    help: str
    keys: Dict[str, Key]
    required: bool = False          # must the file have it?
    multi: bool = False             # `[name:INSTANCE]` sections, any number of them
    example: bool = True            # shown in `config example`
    # Cross-key checks once every key parsed: validate(values) -> [(keys, problem)], e.g.
    # [("login, access_token", "set one of them")]; reported as "file: [section] keys: problem".
    validate: Optional[Callable[[Dict[str, Any]], List[Tuple[str, str]]]] = None
    ami: bool = False               # set by the loader: the section got ami_user / ami_secret
