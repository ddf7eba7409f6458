"""app_queue queues: waiting callers, members, and the day's answered / abandoned counts.

Counts mirror Asterisk's own counters (QueueParams `Completed` / `Abandoned`, which grow on
AgentComplete and QueueCallerAbandon), so a snapshot and the events agree. Asterisk counts since its
start or `queue reset stats`; "today" is the counter minus its value at local midnight (or when the
panel first saw the queue, if later: `counted_since` says which).
"""
from __future__ import annotations

import time
from typing import Dict, Optional

# AST_DEVICE_* of a member's Status
MEMBER_STATUS = {"0": "unknown", "1": "idle", "2": "inuse", "3": "busy", "4": "invalid", "5": "unavailable",
                 "6": "ringing", "7": "inuse_ringing", "8": "hold"}
BUSY_STATUS = frozenset({"2", "3", "6", "7", "8"})


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def _midnight(ts: float) -> float:
    t = time.localtime(ts)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


class Member:
    __slots__ = ("interface", "name", "state_interface", "membership", "paused", "reason", "status", "in_call",
                 "calls")

    def __init__(self, interface: str):
        self.interface = interface
        self.name = self.state_interface = self.membership = self.reason = ""
        self.paused = self.in_call = False
        self.status = "0"
        self.calls = 0

    def update(self, ev: Dict[str, str]) -> None:
        self.name = ev.get("MemberName") or ev.get("Name") or self.name
        self.state_interface = ev.get("StateInterface", self.state_interface)
        self.membership = ev.get("Membership", self.membership)
        if "Paused" in ev:
            self.paused = ev["Paused"] == "1"
            self.reason = ev.get("PausedReason", "") if self.paused else ""
        self.status = ev.get("Status", self.status)
        if "InCall" in ev:
            self.in_call = ev["InCall"] == "1"
        if ev.get("CallsTaken", "").isdigit():
            self.calls = int(ev["CallsTaken"])

    def public(self) -> Dict[str, object]:
        return {"interface": self.interface, "name": self.name, "membership": self.membership,
                "logged_in": True, "paused": self.paused, "paused_reason": self.reason,
                "status": MEMBER_STATUS.get(self.status, "unknown"), "in_queue_call": self.in_call,
                "busy": self.in_call or self.status in BUSY_STATUS, "calls_taken": self.calls}


class Queue:
    __slots__ = ("name", "completed", "abandoned", "base_day", "base_completed", "base_abandoned", "counted_since",
                 "callers", "members")

    def __init__(self, name: str):
        self.name = name
        self.completed = self.abandoned = 0
        self.base_day: Optional[str] = None
        self.base_completed = self.base_abandoned = 0
        self.counted_since = 0.0
        self.callers: Dict[str, Dict[str, object]] = {}     # uniqueid -> caller, in join order
        self.members: Dict[str, Member] = {}

    def counters(self, completed: int, abandoned: int, now: float) -> None:
        """Asterisk's counters as a snapshot reports them."""
        if self.base_day is None:
            self.base_day, self.counted_since = _day(now), now
            self.base_completed, self.base_abandoned = completed, abandoned
        elif completed < self.base_completed or abandoned < self.base_abandoned:
            # Asterisk restarted or its stats were reset: everything it counts now is from today
            self.base_completed = self.base_abandoned = 0
        self.completed, self.abandoned = completed, abandoned
        self._roll(now)

    def _roll(self, now: float) -> None:
        day = _day(now)
        if day != self.base_day:
            self.base_day, self.counted_since = day, _midnight(now)
            self.base_completed, self.base_abandoned = self.completed, self.abandoned

    def count(self, what: str, now: float) -> None:
        self._roll(now)
        if what == "completed":
            self.completed += 1
        else:
            self.abandoned += 1
        if self.base_day is None:
            self.base_day, self.counted_since = _day(now), now

    def public(self, now: float) -> Dict[str, object]:
        today = self.base_day == _day(now)
        waiting = sorted(self.callers.values(), key=lambda c: c["position"])  # type: ignore[arg-type, return-value]
        return {"queue": self.name,
                "answered": self.completed - self.base_completed if today else 0,
                "abandoned": self.abandoned - self.base_abandoned if today else 0,
                "counted_since": self.counted_since if today else _midnight(now),
                "answered_total": self.completed, "abandoned_total": self.abandoned,
                "waiting": [dict(c) for c in waiting],
                "members": [m.public() for m in self.members.values()]}


class Queues:
    def __init__(self) -> None:
        self.q: Dict[str, Queue] = {}

    def get(self, name: str) -> Queue:
        q = self.q.get(name)
        if q is None:
            q = self.q[name] = Queue(name)
        return q

    # ---- snapshot rows (QueueStatus) ----
    def params(self, ev: Dict[str, str], now: float) -> None:
        self.get(ev.get("Queue", "")).counters(_int(ev.get("Completed")), _int(ev.get("Abandoned")), now)

    def entry(self, ev: Dict[str, str], now: float) -> None:
        self.join(ev, now - _int(ev.get("Wait")))

    # ---- events ----
    def join(self, ev: Dict[str, str], since: float) -> None:
        q = self.get(ev.get("Queue", ""))
        q.callers[ev.get("Uniqueid", "")] = {"position": _int(ev.get("Position")), "number": ev.get("CallerIDNum", ""),
                                            "name": _known(ev.get("CallerIDName", "")), "since": since}

    def leave(self, ev: Dict[str, str]) -> None:
        q = self.q.get(ev.get("Queue", ""))
        if q is None:
            return
        gone = q.callers.pop(ev.get("Uniqueid", ""), None)
        if gone is not None:
            pos = gone["position"]
            for c in q.callers.values():      # the queue's own callers only, not a scan of the PBX
                if c["position"] > pos:        # type: ignore[operator]
                    c["position"] -= 1         # type: ignore[operator]

    def member(self, ev: Dict[str, str]) -> None:
        iface = ev.get("Interface") or ev.get("Location", "")
        q = self.get(ev.get("Queue", ""))
        m = q.members.get(iface)
        if m is None:
            m = q.members[iface] = Member(iface)
        m.update(ev)

    def in_call(self, ev: Dict[str, str], yes: bool) -> None:
        """AgentConnect / AgentComplete: Asterisk sends no QueueMemberStatus when only InCall changes."""
        q = self.q.get(ev.get("Queue", ""))
        m = q.members.get(ev.get("Interface", "")) if q is not None else None
        if m is not None:
            m.in_call = yes

    def member_removed(self, ev: Dict[str, str]) -> None:
        q = self.q.get(ev.get("Queue", ""))
        if q is not None:
            q.members.pop(ev.get("Interface", ""), None)


def _int(v: Optional[str]) -> int:
    try:
        return int(v or 0)
    except ValueError:
        return 0


def _known(v: str) -> str:
    return "" if v == "<unknown>" else v
