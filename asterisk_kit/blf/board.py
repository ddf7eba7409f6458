"""The daemon's in-memory truth: every shown extension, its state, name and group, the AMI status.

The AMI side (asyncio) changes it; the cache writer thread copies it to memcached. One lock guards it;
`version` grows by one on every visible change, and starts from the clock so that it also grows
across daemon restarts (readers only compare it for inequality, but humans read it too).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Set

from .states import UNKNOWN, Extension, Groups, Selection, from_status


class Board:
    def __init__(self, selection: Selection, groups: Groups, names: Optional[Dict[str, str]] = None):
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.selection = selection
        self.groups = groups
        self.names: Dict[str, str] = dict(names or {})
        self.ext: Dict[str, Extension] = {}
        self.ami = "connecting"          # connecting | up | down | stopped
        self.ami_since = time.time()
        self.version = int(time.time() * 1000)
        self.dirty: Set[str] = set()      # extensions to (re)write
        self.gone: Set[str] = set()       # extensions whose keys must be deleted
        self.full = True                  # rewrite everything (start, memcached lost keys)
        self.members = True               # extensions came or went since the last take()
        # the call model's records (blf/panel.py), when the daemon runs it: per key, queue, parked call
        self.panel: Dict[str, dict] = {}
        self.queues: Dict[str, dict] = {}
        self.parked: Dict[str, dict] = {}
        self.dirty_q: Set[str] = set()
        self.gone_q: Set[str] = set()
        self.dirty_p: Set[str] = set()
        self.gone_p: Set[str] = set()
        self.parking: Optional[bool] = None   # False: ParkedCalls refused (AMI user without write=call)

    # ---- helpers (lock held) ----
    def _bump(self, extens: Iterable[str] = ()) -> None:
        self.version += 1
        self.dirty.update(extens)
        self.changed.notify_all()

    def _set(self, e: Extension, slug: str, code: int, text: str, now: float, known: bool) -> bool:
        if e.state == slug and e.code == code:
            return False
        if slug != UNKNOWN and e.state == UNKNOWN and e.last_state == slug and e.last_since:
            # back after an AMI outage in the same state: it most likely never changed
            e.since, e.since_known = e.last_since, True
        else:
            e.since, e.since_known = now, known
        e.state, e.code, e.text = slug, code, text
        if slug != UNKNOWN:
            e.last_state, e.last_since = slug, e.since
        return True

    # ---- from AMI ----
    def snapshot(self, rows: List[Dict[str, str]]) -> None:
        """A full ExtensionStateList: replaces what is shown (hints gone since are dropped)."""
        now = time.time()
        with self.lock:
            seen = set()
            changed = []
            for r in rows:
                exten, context = r.get("Exten", ""), r.get("Context", "")
                if not self.selection.wants(exten, context) or exten in seen:
                    continue
                seen.add(exten)
                slug, code = from_status(r.get("Status", ""), r.get("StatusText", ""))
                e = self.ext.get(exten)
                if e is None:
                    e = self.ext[exten] = Extension(exten, context, r.get("Hint", ""))
                    self.members = True
                    self._set(e, slug, code, r.get("StatusText", ""), now, known=False)
                    changed.append(exten)
                    continue
                e.hint = r.get("Hint", e.hint)
                if self._set(e, slug, code, r.get("StatusText", ""), now, known=e.state != UNKNOWN):
                    changed.append(exten)
            for exten in [x for x in self.ext if x not in seen]:
                del self.ext[exten]
                self.gone.add(exten)
                self.members = True
                changed.append(exten)
            self._set_ami("up", now)
            self._bump(changed)

    def status(self, ev: Dict[str, str]) -> str:
        """A live ExtensionStatus event: 'new' (hint not seen before), 'changed', 'same' or '' (not shown)."""
        exten, context = ev.get("Exten", ""), ev.get("Context", "")
        if not self.selection.wants(exten, context):
            return ""
        slug, code = from_status(ev.get("Status", ""), ev.get("StatusText", ""))
        now = time.time()
        with self.lock:
            e = self.ext.get(exten)
            what = "changed"
            if e is None:
                e = self.ext[exten] = Extension(exten, context, ev.get("Hint", ""))
                self.members = True
                what = "new"
            elif ev.get("Hint"):
                e.hint = ev["Hint"]
            if self._set(e, slug, code, ev.get("StatusText", ""), now, known=what != "new"):
                self._bump([exten])
                return what
        return "same"

    def presence(self, exten: str, context: str, status: str, message: str) -> bool:
        with self.lock:
            e = self.ext.get(exten)
            if e is None or e.context != context:
                return False
            status = (status or "").lower()
            status = "" if status in ("not_set", "available", "unknown", "invalid") else status
            if (e.presence, e.presence_message) == (status, message):
                return False
            e.presence, e.presence_message = status, message[:120]
            self._bump([exten])
            return True

    def presence_of_provider(self, provider: str, status: str, message: str) -> List[str]:
        """PresenceStateChange names a provider (CustomPresence:101): update hints that use it."""
        hit = []
        with self.lock:
            # a hint is "devices[,presence provider]": only the part after the comma can match
            targets = [e for e in self.ext.values()
                       if provider and "," in e.hint and provider in e.hint.split(",", 1)[1].split("&")]
        for e in targets:
            if self.presence(e.exten, e.context, status, message):
                hit.append(e.exten)
        return hit

    def ami_lost(self) -> None:
        """AMI is gone: every state is unknown until the next full snapshot."""
        now = time.time()
        with self.lock:
            changed = [x for x, e in self.ext.items() if self._set(e, UNKNOWN, -99, "", now, known=False)]
            self._set_ami("down", now)
            self._bump(changed)

    def stopped(self) -> None:
        with self.lock:
            self._set_ami("stopped", time.time())
            self._bump()

    def _set_ami(self, what: str, now: float) -> None:
        if self.ami != what:
            self.ami, self.ami_since = what, now

    # ---- from config / MySQL ----
    def set_names(self, names: Dict[str, str]) -> None:
        with self.lock:
            changed = [x for x in self.ext if self.names.get(x, "") != names.get(x, "")]
            self.names = dict(names)
            if changed:
                self._bump(changed)

    def reconfigure(self, selection: Selection, groups: Groups) -> None:
        with self.lock:
            self.selection, self.groups = selection, groups
            self.full = True
            self._bump()

    # ---- from the call model (blf/panel.py builds the records) ----
    def panel_update(self, keys: Dict[str, Optional[dict]], queues: Dict[str, Optional[dict]],
                     parked: Dict[str, Optional[dict]], replace: bool = False,
                     parking: Optional[bool] = None) -> None:
        """New records (None: gone). REPLACE: these are all of them (a snapshot rebuild): others go."""
        with self.lock:
            changed: List[str] = []
            if replace:
                for x in [x for x in self.panel if x not in keys]:
                    del self.panel[x]
                    changed.append(x)
                for n in [n for n in self.queues if n not in queues]:
                    queues[n] = None
                for r in [r for r in self.parked if r not in parked]:
                    parked[r] = None
            for x, rec in keys.items():
                if self.panel.get(x) != rec:
                    if rec is None:
                        self.panel.pop(x, None)
                    else:
                        self.panel[x] = rec
                    if x in self.ext:
                        changed.append(x)
            bumped = bool(changed)
            for store, dirty, gone, recs in ((self.queues, self.dirty_q, self.gone_q, queues),
                                             (self.parked, self.dirty_p, self.gone_p, parked)):
                for ref, rec in recs.items():
                    if rec is None:
                        if store.pop(ref, None) is not None:
                            gone.add(ref)
                            dirty.discard(ref)
                            bumped = True
                    elif store.get(ref) != rec:
                        store[ref] = rec
                        dirty.add(ref)
                        gone.discard(ref)
                        bumped = True
            if parking is not None and parking != self.parking:
                self.parking = parking
                bumped = True
            if bumped:
                self._bump(changed)

    # ---- for the writer ----
    def public(self, exten: str) -> dict:
        e = self.ext[exten]
        d = e.public(self.names.get(exten, ""), self.groups.of(exten))
        p = self.panel.get(exten)
        if p is not None:
            d.update(p)
        return d

    def take(self, snapshot: bool = False) -> "Batch":
        """What to write now; clears dirty. Only the changed records are built (one change costs the
        same whatever the number of extensions); the whole snapshot only on a full write or when asked."""
        with self.lock:
            full = self.full
            extens = list(self.ext) if full else [x for x in self.dirty if x in self.ext]
            records = {x: self.public(x) for x in extens}
            snap = None
            if full or snapshot:
                snap = {"version": self.version, "written": time.time(), "groups": self.groups.titles,
                        "ami": self.ami, "ami_since": self.ami_since, "parking": self.parking,
                        "extensions": [records.get(x) or self.public(x) for x in sorted(self.ext, key=_sort_key)],
                        "queues": [self.queues[n] for n in sorted(self.queues)],
                        "parked": [self.parked[r] for r in sorted(self.parked)]}
            listing = sorted(self.ext, key=_sort_key) if full or self.members else None
            batch = Batch(self.version, full, records, set(self.gone), snap, listing, self.meta(),
                          [self.queues[n] for n in sorted(self.dirty_q)], sorted(self.gone_q),
                          [self.parked[r] for r in sorted(self.dirty_p)], sorted(self.gone_p), self.parking)
            self.dirty.clear()
            self.gone.clear()
            for s in (self.dirty_q, self.gone_q, self.dirty_p, self.gone_p):
                s.clear()
            self.full = self.members = False
            return batch

    def meta(self) -> dict:
        return {"ami": self.ami, "ami_since": self.ami_since, "heartbeat": time.time(),
                "version": self.version, "extensions": len(self.ext)}

    def pending(self) -> bool:
        return bool(self.dirty or self.gone or self.full or self.dirty_q or self.gone_q or self.dirty_p
                    or self.gone_p)

    def mark_full(self) -> None:
        with self.lock:
            self.full = True
            self.changed.notify_all()


@dataclass
class Batch:
    version: int
    full: bool                      # everything: readers must re-read the snapshot
    records: Dict[str, dict]        # changed (or, full, all) extensions
    gone: Set[str]                  # extensions no longer shown
    snapshot: Optional[dict]        # the whole board, when full or asked for
    listing: Optional[List[str]]    # every shown extension, when that set changed
    meta: dict
    queues: List[dict] = field(default_factory=list)        # changed queue records
    queues_gone: List[str] = field(default_factory=list)
    parked: List[dict] = field(default_factory=list)        # changed parked-call records
    parked_gone: List[str] = field(default_factory=list)
    parking: Optional[bool] = None


def _sort_key(exten: str):
    return (0, int(exten), exten) if exten.isdigit() else (1, 0, exten)
