"""The web process's single reader of the BLF cache, shared by every viewer.

One thread polls memcached ([blf] poll_ms) for blf:version and blf:meta; on a new version it reads
the snapshot once, works out which extensions changed and wakes the Server-Sent Events streams. So
viewers cost memcached nothing: 100 open pages = one poller, not 100.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Deque, Dict, List, Optional, Tuple

from .cache import META, SNAPSHOT, VERSION, stale_reason


class Hub:
    def __init__(self, cfg, log: logging.Logger):
        self.cfg = cfg
        self.log = log
        b = cfg["blf"]
        self.poll = b["poll_ms"] / 1000.0
        self.stale_seconds = b["stale_seconds"]
        self.cond = threading.Condition()
        self.seq = 0                      # bumped on every change a viewer must hear about
        self.version: Optional[bytes] = None
        self.extensions: Dict[str, dict] = {}
        self.groups: List[str] = []
        self.meta: Optional[dict] = None
        self.stale = "nodaemon"
        self.history: Deque[Tuple[int, Dict[str, dict], List[str]]] = deque(maxlen=256)
        self.viewers = 0
        self.cache_ok = True
        self._thread: Optional[threading.Thread] = None
        self._started = threading.Lock()

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
        got = mc.get_many([VERSION, META])
        meta = json.loads(got[META]) if got.get(META) else None
        version = got.get(VERSION)
        changed: Dict[str, dict] = {}
        removed: List[str] = []
        if version is not None and version != self.version:
            raw = mc.get(SNAPSHOT)
            if raw is not None:
                snap = json.loads(raw)
                new = {e["exten"]: e for e in snap["extensions"]}
                changed = {x: e for x, e in new.items() if self.extensions.get(x) != e}
                removed = [x for x in self.extensions if x not in new]
                with self.cond:
                    self.extensions, self.groups, self.version = new, snap.get("groups", []), version
        elif version is None and self.extensions:
            # memcached restarted and the daemon has not rewritten it yet: keep showing what we had,
            # flagged stale below by the missing heartbeat
            pass
        self.meta = meta
        stale = stale_reason(meta, self.stale_seconds)
        if meta is None and version is None and self.version is not None:
            stale = "cache"      # memcached restarted empty: the daemon has not rewritten it yet
        self._publish(changed, removed, stale)

    def _publish(self, changed: Dict[str, dict], removed: List[str], stale: str) -> None:
        with self.cond:
            if not changed and not removed and stale == self.stale and self.seq > 0:
                return
            self.stale = stale
            self.seq += 1
            self.history.append((self.seq, changed, removed))
            self.cond.notify_all()

    # ---- for the views ----
    def state(self) -> dict:
        with self.cond:
            return self._state_locked()

    def _state_locked(self) -> dict:
        exts = sorted(self.extensions.values(), key=lambda e: (0, int(e["exten"])) if e["exten"].isdigit()
                      else (1, e["exten"]))
        return {"seq": self.seq, "version": self.version.decode() if self.version else None,
                "stale": self.stale, "ami": (self.meta or {}).get("ami"), "now": time.time(),
                "groups": self.groups, "extensions": exts}

    def wait(self, seq: int, timeout: float) -> Tuple[int, Optional[dict]]:
        """Block until something newer than SEQ; returns (new seq, message) or (seq, None) on timeout.
        The message is a delta when the history still covers SEQ, else a full state."""
        with self.cond:
            self.cond.wait_for(lambda: self.seq != seq, timeout=timeout)
            if self.seq == seq:
                return seq, None
            oldest = self.history[0][0] if self.history else self.seq + 1
            if seq + 1 < oldest:
                return self.seq, dict(self._state_locked(), full=True)
            changed: Dict[str, dict] = {}
            removed: List[str] = []
            for s, ch, rm in self.history:
                if s > seq:
                    for x in rm:
                        changed.pop(x, None)
                        removed.append(x)
                    for x, e in ch.items():
                        changed[x] = e
                        if x in removed:
                            removed.remove(x)
            return self.seq, {"full": False, "seq": self.seq, "stale": self.stale,
                              "ami": (self.meta or {}).get("ami"), "now": time.time(),
                              "changed": list(changed.values()), "removed": removed}

    def enter(self, limit: int) -> bool:
        with self.cond:
            if self.viewers >= limit:
                return False
            self.viewers += 1
            return True

    def leave(self) -> None:
        with self.cond:
            self.viewers -= 1
