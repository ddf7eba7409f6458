"""The BLF model: Asterisk extension states, which hints are shown, and the per-extension record.

Asterisk reports an extension's state as a number (ExtensionStatus `Status`) that is a bit field of
the hint's aggregated device states; `StatusText` names it. Every value Asterisk 22 can send is in
STATES, plus `unknown`, which the kit itself uses while it cannot see Asterisk.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

# Asterisk code -> (slug used by the kit, Asterisk's StatusText)
STATES: Dict[int, Tuple[str, str]] = {
    -2: ("removed", "Removed"),            # the hint was removed (dialplan reload)
    -1: ("deactivated", "Deactivated"),    # the extension itself was removed
    0: ("idle", "Idle"),
    1: ("inuse", "InUse"),
    2: ("busy", "Busy"),
    4: ("unavailable", "Unavailable"),
    8: ("ringing", "Ringing"),
    9: ("inuse_ringing", "InUse&Ringing"),
    16: ("hold", "Hold"),
    17: ("inuse_hold", "InUse&Hold"),
}
UNKNOWN = "unknown"
SLUGS = [s for s, _ in STATES.values()] + [UNKNOWN]

# Extension names the kit accepts from AMI: they become memcached keys and HTML ids.
EXTEN_RE = re.compile(r"[0-9A-Za-z*#+_.-]{1,40}")


def from_status(status: str, text: str = "") -> Tuple[str, int]:
    """(slug, code) for an AMI Status / StatusText pair; an unexpected value becomes unknown."""
    try:
        code = int(status)
    except (TypeError, ValueError):
        return UNKNOWN, -99
    if code in STATES:
        return STATES[code][0], code
    return UNKNOWN, code


# ---- which extensions ----------------------------------------------------------------------------

class PatternError(ValueError):
    pass


def compile_pattern(p: str) -> "re.Pattern[str]":
    """`101` exact, `100-199` numeric range, `_1XX` / `_2[0-4]X.` Asterisk pattern."""
    p = p.strip()
    m = re.fullmatch(r"(\d+)-(\d+)", p)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if lo > hi:
            raise PatternError(f"range {p}: start above end")
        return _Range(lo, hi)  # type: ignore[return-value]
    if p.startswith("_"):
        out, i, body = "", 0, p[1:]
        while i < len(body):
            c = body[i]
            if c == "X":
                out += "[0-9]"
            elif c == "Z":
                out += "[1-9]"
            elif c == "N":
                out += "[2-9]"
            elif c == ".":
                out += ".+"
            elif c == "!":
                out += ".*"
            elif c == "[":
                j = body.find("]", i)
                if j < 0 or not re.fullmatch(r"[0-9\-]+", body[i + 1:j]):
                    raise PatternError(f"pattern {p}: bad [...] class")
                out += "[" + body[i + 1:j] + "]"
                i = j
            elif re.fullmatch(r"[0-9A-Za-z*#+-]", c):
                out += re.escape(c)
            else:
                raise PatternError(f"pattern {p}: unexpected {c!r}")
            i += 1
        return re.compile(out)
    if not EXTEN_RE.fullmatch(p):
        raise PatternError(f"{p!r} is not an extension, a range 100-199 or a pattern _1XX")
    return re.compile(re.escape(p))


class _Range:
    """`100-199`: numeric, so 1000 is not in 100-199 however a regex would see it."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi

    def fullmatch(self, s: str):
        return s.isdigit() and self.lo <= int(s) <= self.hi


def compile_patterns(items: Iterable[str]) -> list:
    return [compile_pattern(p) for p in items]


def matches(exten: str, patterns: list) -> bool:
    return any(p.fullmatch(exten) for p in patterns)


@dataclass
class Selection:
    """Which hints the panel shows: their context, then include / exclude patterns."""
    contexts: List[str]
    include: list = field(default_factory=list)
    exclude: list = field(default_factory=list)

    @classmethod
    def from_section(cls, b) -> "Selection":
        return cls(list(b["contexts"]), compile_patterns(b["include"]), compile_patterns(b["exclude"]))

    def wants(self, exten: str, context: str) -> bool:
        if not EXTEN_RE.fullmatch(exten or ""):
            return False
        if self.contexts and context not in self.contexts:
            return False
        if self.include and not matches(exten, self.include):
            return False
        return not matches(exten, self.exclude)


# ---- groups ---------------------------------------------------------------------------------------

def parse_groups(text: str) -> List[Tuple[str, List[str]]]:
    """`Sales: 101-110, 120; Support: _2XX` -> [(title, [pattern, ...])], in the written order."""
    out = []
    for part in text.split(";"):
        if not part.strip():
            continue
        title, sep, members = part.partition(":")
        if not sep or not title.strip() or not members.strip():
            raise PatternError(f"group {part.strip()!r}: expected `Title: 101-110, 120`")
        pats = [m.strip() for m in re.split(r"[,\s]+", members) if m.strip()]
        compile_patterns(pats)
        out.append((title.strip(), pats))
    return out


def parse_names(text: str) -> Dict[str, str]:
    """`101: Olga Petrova; 102: Ivan` -> {exten: name}."""
    out = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        exten, sep, name = part.partition(":")
        exten = exten.strip()
        if not sep or not EXTEN_RE.fullmatch(exten) or not name.strip():
            raise PatternError(f"name {part.strip()!r}: expected `101: Name`")
        out[exten] = name.strip()[:80]
    return out


class Groups:
    def __init__(self, spec: List[Tuple[str, List[str]]]):
        self.spec = [(title, compile_patterns(p)) for title, p in spec]
        self.titles = [t for t, _ in spec]

    def of(self, exten: str) -> str:
        for title, pats in self.spec:
            if matches(exten, pats):
                return title
        return ""


# ---- one extension ---------------------------------------------------------------------------------

@dataclass
class Extension:
    exten: str
    context: str
    hint: str = ""
    state: str = UNKNOWN
    code: int = -99
    text: str = ""
    since: float = field(default_factory=time.time)
    since_known: bool = False       # False: the state was already so when the daemon first saw it
    presence: str = ""              # PresenceStatus of the hint, e.g. away, dnd (empty: none)
    presence_message: str = ""
    # the last state seen from Asterisk, kept while the display says unknown (AMI down)
    last_state: Optional[str] = None
    last_since: float = 0.0

    def public(self, name: str = "", group: str = "") -> dict:
        d = asdict(self)
        for k in ("last_state", "last_since"):
            d.pop(k)
        d["name"] = name
        d["group"] = group
        return d
