"""The calls of each panel key: one record per channel of a key's phone device (PJSIP/101-...).

The other party of a channel is its CONNECTED LINE: Asterisk sets it on the callee while it rings
(Dial copies the caller's ID), on the caller once the callee is known, and updates it after a blind or
attended transfer (NewConnectedLine), so it is right in every phase without following bridges.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

UNKNOWN_IDS = ("", "<unknown>")

# Applications a channel shows while Asterisk itself dialled it (the callee of Dial / Queue).
DIALLED_APPS = frozenset({"AppDial", "AppDial2", "AppQueue"})


def state_of(code: str, direction: str) -> str:
    """ChannelState -> ringing (the phone rings), dialing (it calls out, not answered yet), up, busy."""
    if code == "6":
        return "up"
    if code == "7":
        return "busy"
    if code == "5" and direction == "in":
        return "ringing"
    return "dialing" if direction == "out" else "ringing"


class Call:
    __slots__ = ("uid", "channel", "keys", "linkedid", "direction", "code", "num", "name", "queue", "since",
                 "answered", "answered_known", "hold")

    def __init__(self, uid: str, channel: str, keys: Tuple[str, ...], linkedid: str, direction: str, since: float):
        self.uid, self.channel, self.keys, self.linkedid = uid, channel, keys, linkedid
        self.direction, self.since = direction, since
        self.code = "0"
        self.num = self.name = self.queue = ""
        self.answered: Optional[float] = None
        self.answered_known = True
        self.hold = False

    def party(self, num: str, name: str) -> bool:
        """The connected line (the other party); unknown values never erase a known one."""
        changed = False
        if num not in UNKNOWN_IDS and num != self.num:
            self.num, changed = num, True
        if name not in UNKNOWN_IDS and name != self.name:
            self.name, changed = name, True
        return changed

    def set_code(self, code: str, now: float, known: bool = True) -> bool:
        if not code or code == self.code:
            return False
        self.code = code
        if code == "6" and self.answered is None:
            self.answered, self.answered_known = now, known
        return True

    @property
    def state(self) -> str:
        return "hold" if self.hold and self.code == "6" else state_of(self.code, self.direction)

    def public(self) -> Dict[str, object]:
        return {"id": self.uid, "state": self.state, "direction": self.direction, "number": self.num,
                "name": self.name, "queue": self.queue, "since": self.since, "answered": self.answered,
                "answered_known": self.answered_known}
