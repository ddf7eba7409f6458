"""The BLF layout in memcached, and the daemon's writer thread that keeps it equal to the Board.

Keys (under [memcached] prefix, e.g. `asterisk-kit:`):
  blf:version      the global version counter (decimal); changes on every visible change
  blf:snapshot     JSON {version, written, ami, ami_since, groups, extensions: [record, ...]}
  blf:ext:<exten>  JSON record of one extension {exten, name, group, state, code, text, since, ...}
  blf:list         JSON [exten, ...]
  blf:meta         JSON {ami, ami_since, heartbeat, version, extensions}; rewritten every heartbeat
Write order is records, snapshot, list, version: a reader that sees a new version finds the snapshot
that goes with it. Readers (the web app, other tools) never talk to AMI.

memcached can restart (or evict) at any time, and with several servers one of them can: every few
heartbeats the writer checks that every key it wrote is still there and rewrites everything if not.
Writes happen in this thread so a slow or dead memcached never stalls the AMI reader.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Optional

VERSION, SNAPSHOT, LIST, META = "blf:version", "blf:snapshot", "blf:list", "blf:meta"


def ext_key(exten: str) -> str:
    return "blf:ext:" + exten


def dumps(v) -> bytes:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class CacheWriter(threading.Thread):
    def __init__(self, board, client_factory, log: logging.Logger, heartbeat: float = 1.0, verify_every: int = 3):
        super().__init__(name="blf-cache", daemon=True)
        self.board = board
        self.client_factory = client_factory
        self.log = log
        self.heartbeat = heartbeat
        self.verify_every = verify_every
        self.stop_flag = threading.Event()
        self.mc = None
        self.failing = False
        self.written: set = set()   # extension keys believed to be in memcached
        self.writes = 0             # full rewrites after a lost cache (for logs and tests)

    def reconnect(self, client_factory=None) -> None:
        """[memcached] changed (SIGHUP): new client, full rewrite."""
        with self.board.lock:
            if client_factory:
                self.client_factory = client_factory
            self._close()
            self.board.full = True
            self.board.changed.notify_all()

    def _close(self) -> None:
        if self.mc is not None:
            try:
                self.mc.close()
            except Exception:
                pass
            self.mc = None

    def stop(self, timeout: float = 5) -> None:
        self.stop_flag.set()
        with self.board.lock:
            self.board.changed.notify_all()
        self.join(timeout)

    def run(self) -> None:
        last_beat = 0.0
        beats = 0
        while True:
            with self.board.lock:
                wait = max(0.0, last_beat + self.heartbeat - time.monotonic())
                if not self.board.pending() and not self.stop_flag.is_set() and wait > 0:
                    self.board.changed.wait(wait)
            stopping = self.stop_flag.is_set()
            try:
                if self.mc is None:
                    self.mc = self.client_factory()
                if self.board.pending():
                    self._write()
                if time.monotonic() - last_beat >= self.heartbeat or stopping:
                    beats += 1
                    if beats % self.verify_every == 0:
                        self._verify()
                    self.mc.set(META, dumps(self.board.meta()))
                    last_beat = time.monotonic()
                if self.failing:
                    self.log.info("memcached is back: BLF states written again")
                    self.failing = False
            except Exception as e:
                if not self.failing:
                    self.log.error("memcached write failed (%s: %s); retrying, everything will be rewritten",
                                   type(e).__name__, e)
                self.failing = True
                self.board.mark_full()
                self._close()
                if stopping:
                    return
                # retry at the heartbeat pace, not in a tight loop (mark_full made it "pending")
                self.stop_flag.wait(self.heartbeat)
                last_beat = time.monotonic()
            if stopping:
                self._close()
                return

    def _write(self) -> None:
        version, full, records, gone, snap, meta = self.board.take()
        try:
            if records:
                failed = self.mc.set_many({ext_key(x): dumps(r) for x, r in records.items()}, noreply=False)
                if failed:
                    raise RuntimeError(f"memcached refused {len(failed)} keys")
            for x in gone:
                self.mc.delete(ext_key(x), noreply=False)
            if full:
                # keys of extensions no longer shown (filter changed while we were away)
                for x in self.written - set(records):
                    self.mc.delete(ext_key(x), noreply=False)
                self.written = set(records)
            else:
                self.written = (self.written | set(records)) - gone
            self.mc.set(SNAPSHOT, dumps(snap), noreply=False)
            self.mc.set(LIST, dumps([r["exten"] for r in snap["extensions"]]), noreply=False)
            self.mc.set(VERSION, str(version).encode(), noreply=False)
            self.mc.set(META, dumps(meta), noreply=False)
        except Exception:
            self.board.mark_full()
            raise
        if full:
            self.writes += 1

    def _verify(self) -> None:
        """Every key still there? A restarted memcached (or one of several) has lost them."""
        keys = [VERSION, SNAPSHOT, LIST] + [ext_key(x) for x in self.written]
        got = self.mc.get_many(keys)
        missing = [k for k in keys if k not in got]
        if missing:
            self.log.warning("memcached lost %d of %d BLF keys (restarted or evicted?): rewriting everything",
                             len(missing), len(keys))
            self.board.mark_full()
            self._write()


# ---- reading (web app, CLI, other tools) -----------------------------------------------------------

def read_state(mc) -> dict:
    """{version, meta, snapshot} as found in memcached (None where missing)."""
    got = mc.get_many([VERSION, META])
    out = {"version": got.get(VERSION), "meta": None, "snapshot": None}
    if got.get(META):
        out["meta"] = json.loads(got[META])
    snap = mc.get(SNAPSHOT)
    if snap:
        out["snapshot"] = json.loads(snap)
    return out


def stale_reason(meta: Optional[dict], stale_seconds: float, now: Optional[float] = None) -> str:
    """'' when the data is live, else why not: nodaemon (no heartbeat), ami (daemon cannot see
    Asterisk), stopped (daemon stopped)."""
    now = time.time() if now is None else now
    if not meta:
        return "nodaemon"
    if meta.get("ami") == "stopped":
        return "stopped"
    if now - float(meta.get("heartbeat", 0)) > stale_seconds:
        return "nodaemon"
    if meta.get("ami") != "up":
        return "ami"
    return ""
