"""What a panel user may see of other people's calls, applied while the data is BUILT, so a number a
user may not see is never in what is sent to them (NethVoice hid numbers in its REST API and still
sent them over its WebSocket).

Without `see_numbers` (FOP2's and NethVoice's "privacy"): outside numbers are dropped, and so is a
name that is only a number. Names stay (they are what an operator needs to greet a caller); the
panel's own extension numbers stay (they are on the panel anyway).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import AbstractSet, Container, Optional, Tuple

_NUMBERISH = re.compile(r"[\d\s+()*#.-]+")


@dataclass(frozen=True)
class Permissions:
    see_numbers: bool = False
    queues: Optional[AbstractSet[str]] = None       # None: every queue; else only these


FULL = Permissions(see_numbers=True)


def party(num: str, name: str, perms: Permissions, internal: Container[str]) -> Tuple[Optional[str], str]:
    """(number or None, name) of another party as this user may see it."""
    if perms.see_numbers or num in internal:
        return num, name
    if name and (name == num or _NUMBERISH.fullmatch(name)):
        name = ""
    return None, name
