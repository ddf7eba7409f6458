"""Phone numbers and IVR digits: normalised, then checked against an allow-list.

Whatever passes here goes into a call file, so only digits can pass (no `+`, spaces, `#`, `;`,
line breaks): the configured pattern can narrow that, never widen it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Optional

MAX_DIGITS = 20
_SEPARATORS = re.compile(r"[\s()\-.]")
_DIGITS = re.compile(r"[0-9]{1,%d}" % MAX_DIGITS)
_PLUS7 = re.compile(r"\+?7[0-9]{10}")


class BadNumber(ValueError):
    """Carries a reason key (translated on the page) and a plain English text for the CLI and logs."""

    def __init__(self, key: str, text: str):
        super().__init__(text)
        self.key = key


class NumberRules:
    """TRUNK_PREFIX ([dialer] trunk_prefix, "8" by default) goes in front of a 10-digit number
    (9161234567 -> 89161234567): staff lists often hold numbers without the trunk's 8."""

    def __init__(self, pattern: str = "8[0-9]{10}", normalise_plus7: bool = True, trunk_prefix: str = ""):
        self.pattern = re.compile(pattern)
        self.normalise_plus7 = normalise_plus7
        if not re.fullmatch(r"[0-9]{0,4}", trunk_prefix):
            raise ValueError(f"trunk prefix {trunk_prefix!r}: 0-4 digits")
        self.trunk_prefix = trunk_prefix

    @classmethod
    def from_config(cls, cfg) -> "NumberRules":
        d = cfg["dialer"]
        return cls(d["number_pattern"], d["normalise_plus7"], d["trunk_prefix"])

    def number(self, raw: str) -> str:
        s = _SEPARATORS.sub("", raw or "")
        if not s:
            raise BadNumber("number.empty", "empty number")
        if self.normalise_plus7:
            if _PLUS7.fullmatch(s):
                s = "8" + s[-10:]
        if self.trunk_prefix and len(s) == 10 and s.isascii() and s.isdigit():
            s = self.trunk_prefix + s
        if not _DIGITS.fullmatch(s):
            raise BadNumber("number.chars", f"{raw!r}: only digits (and +7 at the start) are allowed")
        if not self.pattern.fullmatch(s):
            raise BadNumber("number.pattern", f"{raw!r}: does not match the number format {self.pattern.pattern}")
        return s


def digit(raw: Optional[str]) -> str:
    """The IVR digit: empty (plain call) or one of 0-9 (`#` ends Read(), `*` is not sent by all phones)."""
    s = (raw or "").strip()
    if s == "":
        return ""
    if not re.fullmatch(r"[0-9]", s):
        raise BadNumber("digit.bad", f"{raw!r}: the IVR digit must be one digit 0-9 or empty")
    return s


def comment(raw: Optional[str]) -> str:
    """Comments never reach a call file; they are only kept short and on one line for the table."""
    s = " ".join((raw or "").split())
    if len(s) > 200:
        raise BadNumber("comment.long", "comment longer than 200 characters")
    return s


@dataclass
class Entry:
    number: str
    digit: str = ""
    comment: str = ""


def dedupe(entries: Iterable[Entry]) -> List[Entry]:
    out: dict = {}
    for e in entries:
        out[e.number] = e
    return list(out.values())
