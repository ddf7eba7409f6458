"""The web process's single reader of the BLF cache, shared by every viewer.

One thread polls memcached ([blf] poll_ms) for blf:seq and blf:meta (two small keys); on a new SEQ it
fetches only the new change records (cache.Follower) into ONE in-memory copy of the board. Each
change is encoded once as a Server-Sent Events message and every stream writes the same bytes: a
change costs the web process the same with 10 or 2 000 extensions, and viewers add only their
socket writes. A hole the ring cannot fill (daemon restarted, memcached restarted, ring overrun)
re-reads the snapshot and sends viewers the difference, so no page needs a reload to be right.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Deque, Dict, List, Optional, Tuple

from .cache import META, SEQ, Follower, Gap, stale_reason
from .panel import project

# Privacy classes: every message is encoded once per class, and a viewer gets only its class's bytes.
FULL_CLASS, PRIVATE_CLASS = "full", "private"
CLASSES = (FULL_CLASS, PRIVATE_CLASS)

HISTORY = 256       # messages kept for streams that fall behind; further behind: a full snapshot


class Hub:
    def __init__(self, cfg, log: logging.Logger):
        self.cfg = cfg
        self.log = log
        b = cfg["blf"]
        self.poll = b["poll_ms"] / 1000.0
        self.stale_seconds = b["stale_seconds"]
        self.cond = threading.Condition()
        self.seq = 0                      # bumped on every change a viewer must hear about
        self.follower = Follower()
        self.meta: Optional[dict] = None
        self.stale = "nodaemon"
        self.behind_since: Optional[float] = None
        # (seq, {class: SSE bytes}, full?) per published message, encoded once per privacy class
        self.history: Deque[Tuple[int, Dict[str, bytes], bool]] = deque(maxlen=HISTORY)
        self._sorted: Dict[str, Tuple[int, dict]] = {}     # class -> (seq, sorted lists) of the last state()
        self.viewers = 0
        self.cache_ok = True
        self._thread: Optional[threading.Thread] = None
        self._started = threading.Lock()

    @property
    def extensions(self) -> Dict[str, dict]:
        return self.follower.extensions

    def ensure_started(self) -> None:
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="blf-hub", daemon=True)
                self._thread.start()
                # the first read, so the first page already has data
                with self.cond:
                    self.cond.wait_for(lambda: self.seq > 0, timeout=3)

    # ---- poller ----
    def _run(self) -> None:
        from ..memcache import client_from_config
        mc = client_from_config(self.cfg, ignore_exc=False)
        while True:
            try:
                self._poll_once(mc)
                if not self.cache_ok:
                    self.log.info("BLF: memcached readable again")
                self.cache_ok = True
            except Exception as e:
                if self.cache_ok:
                    self.log.error("BLF: cannot read memcached: %s: %s", type(e).__name__, e)
                self.cache_ok = False
                self._publish({}, [], stale="cache")
                time.sleep(1)
            time.sleep(self.poll)

    def _poll_once(self, mc) -> None:
        got = mc.get_many([SEQ, META])
        meta = json.loads(got[META]) if got.get(META) else None
        f = self.follower
        update = None
        try:
            with self.cond:         # viewers read the follower's dict: change it under the lock
                update = f.follow(mc, got.get(SEQ))
            self.behind_since = None
        except Gap as e:
            # the daemon was asked for a fresh snapshot; meanwhile the last state stays shown
            if self.behind_since is None:
                self.log.info("BLF: %s; asked the daemon for a fresh snapshot", e)
                self.behind_since = time.monotonic()
        self.meta = meta
        stale = stale_reason(meta, self.stale_seconds)
        if got.get(SEQ) is None and f.epoch is not None:
            stale = "cache"      # memcached restarted empty: the daemon has not rewritten it yet
        elif self.behind_since is not None and time.monotonic() - self.behind_since > self.stale_seconds:
            stale = "cache"
        if update is None:
            self._publish({}, [], stale)
        else:
            changed, removed, regrouped = update
            self._publish(changed, removed, stale, full=regrouped, panel=f.panel_changes)

    def _publish(self, changed: Dict[str, dict], removed: List[str], stale: str, full: bool = False,
                 panel: Optional[dict] = None) -> None:
        with self.cond:
            busy = panel and any(panel.values())
            if not changed and not removed and not full and not busy and stale == self.stale and self.seq > 0:
                return
            self.stale = stale
            self.seq += 1
            if full:
                # new groups: pages rebuild their sections from a whole snapshot
                data = {c: self._full_locked(c) for c in CLASSES}
            else:
                data = {}
                for c in CLASSES:
                    see = c == FULL_CLASS
                    msg = {"full": False, "seq": self.seq, "stale": stale, "ami": self._ami(), "now": time.time(),
                           "changed": [project(r, see) for r in changed.values()], "removed": removed}
                    if busy:
                        assert panel is not None
                        msg.update(queues=[project(r, see) for r in panel["queues"].values()],
                                   queues_removed=panel["queues_removed"],
                                   parked=[project(r, see) for r in panel["parked"].values()],
                                   parked_removed=panel["parked_removed"], parking=self.follower.parking)
                    data[c] = _event("update", msg)
            self.history.append((self.seq, data, full))
            self.cond.notify_all()

    def _ami(self):
        return (self.meta or {}).get("ami")

    # ---- for the views ----
    def state(self, see_numbers: bool = True) -> dict:
        with self.cond:
            return self._state_locked(FULL_CLASS if see_numbers else PRIVATE_CLASS)

    def _state_locked(self, cls: str) -> dict:
        cached = self._sorted.get(cls)
        if cached is None or cached[0] != self.seq:
            see = cls == FULL_CLASS
            f = self.follower
            exts = sorted(f.extensions.values(),
                          key=lambda e: (0, int(e["exten"]), "") if e["exten"].isdigit() else (1, 0, e["exten"]))
            cached = self._sorted[cls] = (self.seq, {
                "extensions": [project(e, see) for e in exts],
                "queues": [project(f.queues[n], see) for n in sorted(f.queues)],
                "parked": [project(f.parked[r], see) for r in sorted(f.parked)]})
        v = self.follower.version
        return dict({"seq": self.seq, "version": str(v) if v is not None else None,
                     "stale": self.stale, "ami": self._ami(), "now": time.time(),
                     "groups": self.follower.groups, "parking": self.follower.parking}, **cached[1])

    def _full_locked(self, cls: str, retry: bool = False) -> bytes:
        return _event("snapshot", dict(self._state_locked(cls), full=True), retry=retry)

    def first(self, see_numbers: bool = True) -> Tuple[int, bytes]:
        """A new stream's opening message: (seq, the whole state as an SSE snapshot event)."""
        with self.cond:
            return self.seq, self._full_locked(FULL_CLASS if see_numbers else PRIVATE_CLASS, retry=True)

    def wait(self, seq: int, timeout: float, see_numbers: bool = True) -> Tuple[int, Optional[bytes]]:
        """Block until something newer than SEQ; returns (new seq, SSE bytes) or (seq, None) on timeout.
        The bytes are the messages since SEQ as encoded once for all viewers of this privacy class, or a
        full snapshot when the history no longer reaches back that far."""
        cls = FULL_CLASS if see_numbers else PRIVATE_CLASS
        with self.cond:
            self.cond.wait_for(lambda: self.seq != seq, timeout=timeout)
            if self.seq == seq:
                return seq, None
            oldest = self.history[0][0] if self.history else self.seq + 1
            if seq + 1 < oldest:
                return self.seq, self._full_locked(cls)
            parts: List[bytes] = []
            for s, data, full in self.history:
                if s > seq:
                    if full:
                        parts = []      # a snapshot replaces whatever came before it
                    parts.append(data[cls])
            return self.seq, b"".join(parts)

    def enter(self, limit: int) -> bool:
        with self.cond:
            if self.viewers >= limit:
                return False
            self.viewers += 1
            return True

    def leave(self) -> None:
        with self.cond:
            self.viewers -= 1


def _event(name: str, data: dict, retry: bool = False) -> bytes:
    head = "retry: 2000\n" if retry else ""
    return (f"{head}event: {name}\ndata: " + json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            + "\n\n").encode("utf-8")
