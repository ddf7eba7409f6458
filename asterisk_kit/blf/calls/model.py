"""The operator panel's call model: per key the calls and their other party, DND and presence; queues;
parked calls. Pure: AMI messages (dicts, as asterisk_kit/amiproto.py yields them) in, views out.

`rebuild(rows)` replaces everything from the rows of the SNAPSHOT_ACTIONS lists (snapshot.py), taken
after every (re)connect, so nothing is right only after a reload; `apply(event)` then follows one
event in O(1) (dict look-ups by Uniqueid, device, provider, queue; never a scan of all keys) and
returns what changed: `("key", exten)`, `("queue", name)`, `("parked", "lot:space")`.

Times are the event's `Timestamp` (manager.conf `timestampevents = yes`) when present, else the clock.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .channels import DIALLED_APPS, Call
from .hints import DND_OFF, HintMap, channel_device
from .parking import Parking
from .privacy import FULL, Permissions, party
from .queues import Queues

Message = Dict[str, str]
Change = Tuple[str, str]
NOTHING: List[Change] = []

DEVICE_STATES = {"NOT_INUSE": "idle", "INUSE": "inuse", "BUSY": "busy", "INVALID": "invalid",
                 "UNAVAILABLE": "unavailable", "RINGING": "ringing", "RINGINUSE": "inuse_ringing",
                 "ONHOLD": "hold", "UNKNOWN": "unknown"}


class Model:
    def __init__(self, contexts: Sequence[str] = ("ext-local",), dnd_prefix: str = "Custom:DND",
                 clock: Callable[[], float] = time.time):
        self.contexts = frozenset(contexts)
        self.dnd_prefix = dnd_prefix
        self.clock = clock
        self._reset()
        self._on = {
            "Newchannel": self._newchannel, "Hangup": self._hangup,
            "DialBegin": self._dial_begin, "AgentCalled": self._agent, "AgentConnect": self._agent,
            "Hold": self._hold, "Unhold": self._hold,
            "ExtensionStatus": self._extension, "DeviceStateChange": self._device,
            "PresenceStateChange": self._presence,
            "QueueCallerJoin": self._q_join, "QueueCallerLeave": self._q_leave,
            "QueueCallerAbandon": self._q_abandon, "AgentComplete": self._q_complete,
            "QueueMemberStatus": self._q_member, "QueueMemberAdded": self._q_member,
            "QueueMemberPause": self._q_member, "QueueMemberPenalty": self._q_member,
            "QueueMemberRinginuse": self._q_member, "QueueMemberRemoved": self._q_member_removed,
            "ParkedCall": self._parked, "ParkedCallSwap": self._parked, "UnParkedCall": self._unparked,
            "ParkedCallGiveUp": self._unparked, "ParkedCallTimeOut": self._unparked,
        }

    def _reset(self) -> None:
        self.hints = HintMap(self.dnd_prefix)
        self.calls: Dict[str, Call] = {}                    # uniqueid -> call of a key's phone
        self.key_calls: Dict[str, Dict[str, Call]] = {}     # key -> {uniqueid: call}
        self.devices: Dict[str, str] = {}                   # device -> DeviceStateChange State
        self.presence: Dict[str, Tuple[str, str, str]] = {}  # key -> (status, subtype, message)
        self.queues = Queues()
        self.parking = Parking()

    # ---- snapshot ----
    def rebuild(self, rows: Iterable[Message], now: Optional[float] = None) -> None:
        """Replace the whole model with the rows of the SNAPSHOT_ACTIONS lists (any order)."""
        now = self.clock() if now is None else now
        old_queues = self.queues.q      # each queue's start-of-day counters survive a reconnect
        self._reset()
        channels: List[Message] = []
        for r in rows:
            ev = r.get("Event", "")
            if ev == "CoreShowChannel":
                channels.append(r)
            elif ev == "QueueParams":
                old = old_queues.get(r.get("Queue", ""))
                q = self.queues.get(r.get("Queue", ""))
                if old is not None:
                    q.base_day, q.counted_since = old.base_day, old.counted_since
                    q.base_completed, q.base_abandoned = old.base_completed, old.base_abandoned
                self.queues.params(r, now)
            elif ev == "QueueMember":
                self.queues.member(r)
            elif ev == "QueueEntry":
                self.queues.entry(r, now)
            elif ev == "ParkedCall":
                self.parking.parked(r, now)
            elif ev in ("ExtensionStatus", "DeviceStateChange", "PresenceStateChange"):
                self._on[ev](r, now)
        # a queue member's channel (AppQueue) shares its Linkedid with the caller's, which runs Queue()
        queue_of = {r.get("Linkedid", ""): r.get("ApplicationData", "").split(",", 1)[0]
                    for r in channels if r.get("Application") == "Queue"}
        for r in channels:
            keys = self.hints.keys_of_device(channel_device(r.get("Channel", "")))
            if not keys:
                continue
            app = r.get("Application", "")
            dialled = app in DIALLED_APPS or r.get("ApplicationData") == "(Outgoing Line)"
            c = self._add(r, tuple(sorted(keys)), "in" if dialled else "out", now - _hms(r.get("Duration", "")))
            c.set_code(r.get("ChannelState", ""), now - _hms(r.get("Duration", "")), known=False)
            if app == "AppQueue":
                c.queue = queue_of.get(r.get("Linkedid", ""), "")

    # ---- events ----
    def apply(self, ev: Message) -> List[Change]:
        """Follow one event; returns what changed (empty list: nothing the panel shows)."""
        name = ev.get("Event", "")
        handler = self._on.get(name)
        ts = ev.get("Timestamp")
        now = float(ts) if ts else self.clock()
        out = handler(ev, now) if handler is not None else NOTHING
        c = self.calls.get(ev.get("Uniqueid", ""))
        if c is not None and name != "Hangup":
            # every channel event carries the channel's state and connected line: keep them current
            changed = c.set_code(ev.get("ChannelState", ""), now)
            changed = c.party(ev.get("ConnectedLineNum", ""), ev.get("ConnectedLineName", "")) or changed
            if changed:
                out = out + [("key", k) for k in c.keys]
        return out

    def _add(self, ev: Message, keys: Tuple[str, ...], direction: str, since: float) -> Call:
        c = Call(ev.get("Uniqueid", ""), ev.get("Channel", ""), keys, ev.get("Linkedid", ""), direction, since)
        c.party(ev.get("ConnectedLineNum", ""), ev.get("ConnectedLineName", ""))
        self.calls[c.uid] = c
        for k in keys:
            self.key_calls.setdefault(k, {})[c.uid] = c
        return c

    def _newchannel(self, ev: Message, now: float) -> List[Change]:
        keys = self.hints.keys_of_device(channel_device(ev.get("Channel", "")))
        if not keys:
            return NOTHING
        # a phone that dials starts in state Ring (4); a channel Asterisk dials starts Down (0)
        c = self._add(ev, tuple(sorted(keys)), "out" if ev.get("ChannelState") == "4" else "in", now)
        c.set_code(ev.get("ChannelState", ""), now)
        return [("key", k) for k in c.keys]

    def _hangup(self, ev: Message, now: float) -> List[Change]:
        c = self.calls.pop(ev.get("Uniqueid", ""), None)
        if c is None:
            return NOTHING
        for k in c.keys:
            kc = self.key_calls.get(k)
            if kc is not None:
                kc.pop(c.uid, None)
                if not kc:
                    del self.key_calls[k]
        return [("key", k) for k in c.keys]

    def _dest(self, ev: Message, now: float) -> Optional[Call]:
        c = self.calls.get(ev.get("DestUniqueid", ""))
        if c is not None:
            c.set_code(ev.get("DestChannelState", ""), now)
            c.party(ev.get("DestConnectedLineNum", ""), ev.get("DestConnectedLineName", ""))
        return c

    def _dial_begin(self, ev: Message, now: float) -> List[Change]:
        c = self._dest(ev, now)
        if c is None:
            return NOTHING
        c.direction = "in"
        return [("key", k) for k in c.keys]

    def _agent(self, ev: Message, now: float) -> List[Change]:
        c = self._dest(ev, now)
        if ev.get("Event") == "AgentConnect":
            self.queues.in_call(ev, True)
        out: List[Change] = [("queue", ev.get("Queue", ""))]
        if c is not None:
            c.queue = ev.get("Queue", "")
            out += [("key", k) for k in c.keys]
        return out

    def _hold(self, ev: Message, now: float) -> List[Change]:
        c = self.calls.get(ev.get("Uniqueid", ""))
        if c is None:
            return NOTHING
        c.hold = ev.get("Event") == "Hold"
        return [("key", k) for k in c.keys]

    def _extension(self, ev: Message, now: float) -> List[Change]:
        key, hint = ev.get("Exten", ""), ev.get("Hint", "")
        if not hint or ev.get("Context", "") not in self.contexts or ev.get("Status", "").startswith("-"):
            if ev.get("Status", "").startswith("-") and key in self.hints.hint:   # hint removed
                self.hints.drop(key)
                return [("key", key)]
            return NOTHING
        return [("key", key)] if self.hints.set(key, hint) else NOTHING

    def _device(self, ev: Message, now: float) -> List[Change]:
        device, state = ev.get("Device", ""), ev.get("State", "")
        keys = self.hints.keys_of_device(device)
        if not keys:
            return NOTHING          # Queue:..., Local/... and devices of no key: not kept
        if self.devices.get(device) == state:
            return NOTHING
        self.devices[device] = state
        return [("key", k) for k in keys]

    def _presence(self, ev: Message, now: float) -> List[Change]:
        keys = self.hints.by_presence.get(ev.get("Presentity", ""))
        if not keys:
            return NOTHING
        status = ev.get("Status", "").lower()
        status = "" if status in ("not_set", "available", "unknown", "invalid") else status
        value = (status, ev.get("Subtype", ""), ev.get("Message", ""))
        out: List[Change] = []
        for k in keys:
            if self.presence.get(k) != value:
                self.presence[k] = value
                out.append(("key", k))
        return out

    def _q_join(self, ev: Message, now: float) -> List[Change]:
        self.queues.join(ev, now)
        return [("queue", ev.get("Queue", ""))]

    def _q_leave(self, ev: Message, now: float) -> List[Change]:
        self.queues.leave(ev)
        return [("queue", ev.get("Queue", ""))]

    def _q_abandon(self, ev: Message, now: float) -> List[Change]:
        self.queues.get(ev.get("Queue", "")).count("abandoned", now)
        return [("queue", ev.get("Queue", ""))]

    def _q_complete(self, ev: Message, now: float) -> List[Change]:
        self.queues.get(ev.get("Queue", "")).count("completed", now)
        self.queues.in_call(ev, False)
        return [("queue", ev.get("Queue", ""))]

    def _q_member(self, ev: Message, now: float) -> List[Change]:
        self.queues.member(ev)
        return [("queue", ev.get("Queue", ""))]

    def _q_member_removed(self, ev: Message, now: float) -> List[Change]:
        self.queues.member_removed(ev)
        return [("queue", ev.get("Queue", ""))]

    def _parked(self, ev: Message, now: float) -> List[Change]:
        return [("parked", self.parking.parked(ev, now))]

    def _unparked(self, ev: Message, now: float) -> List[Change]:
        ref = self.parking.gone(ev)
        return [("parked", ref)] if ref else NOTHING

    # ---- views (numbers filtered here, so they never reach the wire) ----
    def key_view(self, key: str, perms: Permissions = FULL) -> Dict[str, object]:
        h = self.hints
        phones = h.phones.get(key, [])
        dnd = any(self.devices.get(d, "") not in DND_OFF for d in h.dnd.get(key, ()))
        pres = self.presence.get(key, ("", "", ""))
        calls = []
        for c in sorted(self.key_calls.get(key, {}).values(), key=lambda c: c.since):
            d = c.public()
            d["number"], d["name"] = party(c.num, c.name, perms, h.hint)
            calls.append(d)
        return {"exten": key, "known": key in h.hint, "dnd": dnd,
                "phone": DEVICE_STATES.get(self.devices.get(phones[0], ""), "unknown") if phones else "unknown",
                "presence": pres[0], "presence_subtype": pres[1], "presence_message": pres[2], "calls": calls}

    def queue_view(self, name: str, perms: Permissions = FULL, now: Optional[float] = None) -> Dict[str, object]:
        d = self.queues.q[name].public(self.clock() if now is None else now)
        waiting: List[Dict[str, object]] = d["waiting"]  # type: ignore[assignment]
        for c in waiting:
            c["number"], c["name"] = party(str(c["number"]), str(c["name"]), perms, self.hints.hint)
        return d

    def parked_view(self, ref: str, perms: Permissions = FULL) -> Dict[str, object]:
        d = dict(self.parking.spaces[ref])
        d["number"], d["name"] = party(d["number"], d["name"], perms, self.hints.hint)  # type: ignore[arg-type]
        return d

    def view_for(self, perms: Permissions = FULL, now: Optional[float] = None) -> Dict[str, object]:
        """Everything this user may see: keys, queues (only allowed ones), parked calls."""
        now = self.clock() if now is None else now
        queues = [n for n in sorted(self.queues.q) if perms.queues is None or n in perms.queues]
        return {"keys": {k: self.key_view(k, perms) for k in sorted(self.hints.hint)},
                "queues": [self.queue_view(n, perms, now) for n in queues],
                "parked": [self.parked_view(r, perms) for r in sorted(self.parking.spaces)]}

    def view_of(self, change: Change, perms: Permissions = FULL) -> Optional[Dict[str, object]]:
        """The new view of one changed thing (None: gone, or not for this user): for per-change deltas."""
        what, ref = change
        if what == "key":
            return self.key_view(ref, perms) if ref in self.hints.hint else None
        if what == "queue":
            allowed = perms.queues is None or ref in perms.queues
            return self.queue_view(ref, perms) if allowed and ref in self.queues.q else None
        return self.parked_view(ref, perms) if ref in self.parking.spaces else None


def _hms(s: str) -> int:
    """CoreShowChannel Duration `HH:MM:SS` -> seconds."""
    try:
        h, m, sec = s.split(":")
        return int(h) * 3600 + int(m) * 60 + int(sec)
    except ValueError:
        return 0
