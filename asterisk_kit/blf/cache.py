"""The BLF layout in memcached, the daemon's writer thread, and the readers' delta follower.

Keys (under [memcached] prefix, e.g. `asterisk-kit:`):
  blf:seq          "EPOCH SEQ VERSION": the last change written. EPOCH is new at every daemon start,
                   SEQ grows by one per written change within it, VERSION is the board's counter
  blf:delta:<n>    JSON change record of SEQ n, in a ring of RING keys (n = SEQ mod RING):
                   {epoch, seq, version, ami, ami_since, full, changed: [record, ...], removed: [exten, ...]}
                   full: true says "read the snapshot" (start, lost cache, new config)
  blf:snapshot     JSON {epoch, seq, version, written, ami, ami_since, groups, extensions: [record, ...]};
                   rewritten on a full write and every SNAPSHOT_EVERY changes, so it is always inside the ring
  blf:ext:<exten>  JSON record of one extension {exten, name, group, state, code, text, since, ...}; always current
  blf:list         JSON [exten, ...]; rewritten when extensions come or go
  blf:meta         JSON {ami, ami_since, heartbeat, version, epoch, seq, extensions}; every heartbeat
  blf:resync       set by a reader that found a hole it cannot fill (lost ring keys): the daemon answers
                   with a full write within a heartbeat
Write order: snapshot (when due), then the delta and the records, then blf:seq. A reader that sees a
new SEQ finds its delta, and the snapshot when the delta says so. So one change costs the daemon one
small record and the web process one small read, whatever the number of extensions.

memcached can restart (or evict) at any time, and with several servers one of them can: every
heartbeat the writer checks the keys readers start from (seq, snapshot, list) and a rotating slice of
the records, and rewrites everything when one is missing. Writes happen in this thread so a slow or
dead memcached never stalls the AMI reader.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

SEQ, SNAPSHOT, LIST, META, RESYNC = "blf:seq", "blf:snapshot", "blf:list", "blf:meta", "blf:resync"
RING = 1024                 # change records kept in memcached
SNAPSHOT_EVERY = 256        # changes between two snapshots (well inside the ring)
VERIFY_SLICE = 256          # records checked per heartbeat


def ext_key(exten: str) -> str:
    return "blf:ext:" + exten


def delta_key(seq: int, ring: int = RING) -> str:
    return f"blf:delta:{seq % ring}"


def dumps(v) -> bytes:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_seq(raw) -> Optional[Tuple[str, int, int]]:
    """blf:seq value -> (epoch, seq, version); None when missing or not ours."""
    try:
        epoch, seq, version = raw.decode().split()
        return epoch, int(seq), int(version)
    except (AttributeError, ValueError):
        return None


class CacheWriter(threading.Thread):
    def __init__(self, board, client_factory, log: logging.Logger, heartbeat: float = 1.0,
                 ring: int = RING, snapshot_every: int = SNAPSHOT_EVERY):
        super().__init__(name="blf-cache", daemon=True)
        self.board = board
        self.client_factory = client_factory
        self.log = log
        self.heartbeat = heartbeat
        self.ring = ring
        self.snapshot_every = min(snapshot_every, ring // 2)
        self.stop_flag = threading.Event()
        self.mc: Any = None
        self.failing = False
        # a new epoch per daemon start: readers never mix this run's ring with a previous one's
        self.epoch = f"{int(time.time())}.{os.getpid()}.{secrets.token_hex(3)}"
        self.seq = 0
        self.snap_seq = -(1 << 30)  # SEQ of the last snapshot written
        self.meta_ami: Optional[str] = None
        self.written: set = set()   # extension keys believed to be in memcached
        self.verify_pos = 0
        self.writes = 0             # full rewrites (for logs and tests)

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
                    if not stopping:
                        self._verify()
                    self.mc.set(META, dumps(self._meta()))
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

    def _meta(self, meta: Optional[dict] = None) -> dict:
        meta = meta or self.board.meta()
        meta["epoch"], meta["seq"] = self.epoch, self.seq
        return meta

    def _write(self) -> None:
        due = self.seq + 1 - self.snap_seq >= self.snapshot_every
        b = self.board.take(snapshot=due)
        # a SEQ is never reused, even when its write fails half-way
        self.seq += 1
        seq = self.seq
        try:
            if b.snapshot is not None:
                b.snapshot["epoch"], b.snapshot["seq"] = self.epoch, seq
                self.mc.set(SNAPSHOT, dumps(b.snapshot), noreply=False)
                self.snap_seq = seq
            delta = {"epoch": self.epoch, "seq": seq, "version": b.version, "ami": b.meta["ami"],
                     "ami_since": b.meta["ami_since"], "full": b.full,
                     "changed": [] if b.full else list(b.records.values()), "removed": [] if b.full else sorted(b.gone),
                     "parking": b.parking}
            if not b.full and (b.queues or b.queues_gone or b.parked or b.parked_gone):
                # the call model's queues and parked calls (blf/panel.py), only when something changed
                delta.update(queues=b.queues, queues_removed=b.queues_gone, parked=b.parked,
                             parked_removed=b.parked_gone)
            items = {delta_key(seq, self.ring): dumps(delta)}
            items.update((ext_key(x), dumps(r)) for x, r in b.records.items())
            failed = self.mc.set_many(items, noreply=False)
            if failed:
                raise RuntimeError(f"memcached refused {len(failed)} keys")
            for x in b.gone:
                self.mc.delete(ext_key(x), noreply=False)
            if b.full:
                # keys of extensions no longer shown (filter changed while we were away)
                for x in self.written - set(b.records):
                    self.mc.delete(ext_key(x), noreply=False)
                self.written = set(b.records)
            else:
                self.written = (self.written | set(b.records)) - b.gone
            if b.listing is not None:
                self.mc.set(LIST, dumps(b.listing), noreply=False)
            if b.full or b.meta["ami"] != self.meta_ami:
                # readers take the AMI status (stale or not) from meta: say it with the change
                self.mc.set(META, dumps(self._meta(b.meta)), noreply=False)
                self.meta_ami = b.meta["ami"]
            self.mc.set(SEQ, f"{self.epoch} {seq} {b.version}".encode(), noreply=False)
        except Exception:
            self.board.mark_full()
            raise
        if b.full:
            self.writes += 1

    def _verify(self) -> None:
        """The keys readers start from still there? A restarted memcached (or one of several) has lost
        them; a reader that found a hole in the ring asks for a fresh snapshot through blf:resync."""
        written = list(self.written)
        if self.verify_pos >= len(written):
            self.verify_pos = 0
        sample = [ext_key(x) for x in written[self.verify_pos:self.verify_pos + VERIFY_SLICE]]
        self.verify_pos += VERIFY_SLICE
        keys = [SEQ, LIST] + sample
        got = self.mc.get_many(keys + [RESYNC])
        missing = [k for k in keys if k not in got]
        if self.seq and not self.mc.touch(SNAPSHOT, noreply=False):
            missing.append(SNAPSHOT)
        if missing:
            self.log.warning("memcached lost %d of %d BLF keys checked (restarted or evicted?): rewriting everything",
                             len(missing), len(keys) + 1)
        elif got.get(RESYNC) is not None:
            self.log.info("a reader missed BLF changes (%s): writing a fresh snapshot",
                          got[RESYNC].decode(errors="replace"))
        else:
            return
        self.mc.delete(RESYNC, noreply=False)
        self.board.mark_full()
        self._write()


# ---- reading (web app, CLI, other tools) -----------------------------------------------------------

class Gap(Exception):
    """The ring no longer holds the changes a reader needs and the snapshot does not close the hole."""


class Follower:
    """A reader's copy of the board, kept current from blf:seq and the change ring.

    follow() is given the blf:seq value just read; it fetches only the new change records (one
    get_many) and applies them. It reads the snapshot instead when it must: first call, a new epoch
    (daemon restarted), a hole in the ring (overrun, memcached restarted), or a record saying full.
    """

    def __init__(self, ring: int = RING):
        self.ring = ring
        self.epoch: Optional[str] = None
        self.seq = 0
        self.version: Optional[int] = None
        self.extensions: Dict[str, dict] = {}
        self.groups: List[str] = []
        # the call model's queues and parked calls (records with the same privacy layout as extensions)
        self.queues: Dict[str, dict] = {}
        self.parked: Dict[str, dict] = {}
        self.parking: Optional[bool] = None
        # what the last follow() changed in them: {queues: {name: rec}, queues_removed: [...], parked..., }
        self.panel_changes: Dict[str, Any] = {}
        self.resyncs = 0            # snapshots read (for tests and the benchmark)
        self._asked: Optional[Tuple[str, int]] = None

    def follow(self, mc, raw) -> Optional[Tuple[Dict[str, dict], List[str], bool]]:
        """(changed {exten: record}, removed [exten], regrouped) or None when nothing is new.
        Raises Gap after asking the daemon for a fresh snapshot (it comes within a heartbeat)."""
        head = parse_seq(raw)
        if head is None:
            return None
        epoch, seq, version = head
        if epoch == self.epoch and seq == self.seq:
            return None
        if epoch == self.epoch and self.seq < seq < self.seq + self.ring:
            deltas = self._deltas(mc, epoch, self.seq + 1, seq)
            if deltas is not None and not any(d["full"] for d in deltas):
                changed: Dict[str, dict] = {}
                removed: List[str] = []
                self.panel_changes = _no_panel_changes()
                self._apply(deltas, changed, removed)
                self.seq, self.version = seq, version
                return changed, removed, False
        return self._resync(mc, epoch, seq)

    def _deltas(self, mc, epoch: str, first: int, last: int) -> Optional[List[dict]]:
        if last < first:
            return []
        if last - first >= self.ring:
            return None
        keys = [delta_key(i, self.ring) for i in range(first, last + 1)]
        got = mc.get_many(keys)
        out = []
        for i, k in zip(range(first, last + 1), keys, strict=True):
            raw = got.get(k)
            d = json.loads(raw) if raw is not None else None
            if not d or d.get("epoch") != epoch or d.get("seq") != i:
                return None         # missing, or overwritten by a later turn of the ring
            out.append(d)
        return out

    def _apply(self, deltas: List[dict], changed: Dict[str, dict], removed: List[str]) -> None:
        for d in deltas:
            for x in d["removed"]:
                changed.pop(x, None)
                self.extensions.pop(x, None)
                if x not in removed:
                    removed.append(x)
            for r in d["changed"]:
                x = r["exten"]
                self.extensions[x] = changed[x] = r
                if x in removed:
                    removed.remove(x)
            self.version = d["version"]
            self.parking = d.get("parking", self.parking)
            pc = self.panel_changes
            for what, key in (("queues", "queue"), ("parked", "ref")):
                store, ch, rm = getattr(self, what), pc[what], pc[what + "_removed"]
                for ref in d.get(what + "_removed", ()):
                    store.pop(ref, None)
                    ch.pop(ref, None)
                    if ref not in rm:
                        rm.append(ref)
                for r in d.get(what, ()):
                    store[r[key]] = ch[r[key]] = r
                    if r[key] in rm:
                        rm.remove(r[key])

    def _resync(self, mc, epoch: str, seq: int):
        raw = mc.get(SNAPSHOT)
        snap: Any = json.loads(raw) if raw is not None else None
        deltas = None
        if snap and snap.get("epoch") == epoch:
            deltas = self._deltas(mc, epoch, snap["seq"] + 1, seq)
        if deltas is None or any(d["full"] for d in deltas):
            if self._asked != (epoch, seq):
                mc.set(RESYNC, f"{epoch} {seq}".encode(), noreply=False)
                self._asked = (epoch, seq)
            raise Gap(f"changes up to {epoch} {seq} are no longer in memcached")
        new = {e["exten"]: e for e in snap["extensions"]}
        changed = {x: e for x, e in new.items() if self.extensions.get(x) != e}
        removed = [x for x in self.extensions if x not in new]
        regrouped = self.groups != snap.get("groups", [])
        self.extensions, self.groups = new, snap.get("groups", [])
        self.version = snap.get("version")
        self.parking = snap.get("parking")
        pc = self.panel_changes = _no_panel_changes()
        for what, key in (("queues", "queue"), ("parked", "ref")):
            fresh = {r[key]: r for r in snap.get(what, [])}
            old = getattr(self, what)
            pc[what] = {k: r for k, r in fresh.items() if old.get(k) != r}
            pc[what + "_removed"] = [k for k in old if k not in fresh]
            setattr(self, what, fresh)
        self._apply(deltas, changed, removed)
        self.epoch, self.seq = epoch, max(seq, snap["seq"])
        self.resyncs += 1
        return changed, removed, regrouped


def _no_panel_changes() -> Dict[str, Any]:
    return {"queues": {}, "queues_removed": [], "parked": {}, "parked_removed": []}


def read_state(mc) -> dict:
    """{version, meta, snapshot} as found in memcached (None where missing); the snapshot brought up
    to date with the change ring."""
    got = mc.get_many([SEQ, META])
    out: Dict[str, Any] = {"version": None, "meta": None, "snapshot": None}
    if got.get(META):
        out["meta"] = json.loads(got[META])
    f = Follower()
    try:
        f.follow(mc, got.get(SEQ))
    except Gap:
        return out
    if f.epoch is not None:
        out["version"] = str(f.version).encode()
        out["snapshot"] = {"epoch": f.epoch, "seq": f.seq, "version": f.version, "groups": f.groups,
                           "extensions": sorted(f.extensions.values(), key=lambda e: _sort_key(e["exten"])),
                           "queues": [f.queues[n] for n in sorted(f.queues)],
                           "parked": [f.parked[r] for r in sorted(f.parked)], "parking": f.parking}
    return out


def _sort_key(exten: str):
    return (0, int(exten), exten) if exten.isdigit() else (1, 0, exten)


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
