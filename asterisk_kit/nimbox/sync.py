"""`asterisk-kit nimbox sync`: the outbox first, then every qualifying CDR call of the window.

Requests go out through a small pool of worker threads, each with its own keep-alive Session, at
most [nimbox] concurrency in flight. Outcomes are written to the store in batches by the main
thread (SQLite stays single-writer). A kill at any point loses nothing: the CDR window and the
outbox are read again by the next run, and a call NiMbox already holds answers "exists"; no call is
marked done before NiMbox confirmed it.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

from . import cdr, client, outbox
from .call import BadCall, Call, CallBuilder

FLUSH_EVERY = 500          # outcomes per store transaction
FLUSH_SECONDS = 1.0
GIVE_UP_AFTER = 20         # temporary failures in a row (at least 2 x concurrency): NiMbox is down


@dataclass
class Summary:
    outbox: int = 0           # pending calls taken from the outbox
    rows: int = 0             # CDR rows read
    calls: int = 0            # distinct qualifying calls in the window
    known: int = 0            # already confirmed earlier: no request
    created: int = 0
    exists: int = 0           # NiMbox answered "already there"
    rejected: int = 0
    failed: int = 0           # temporary failures: kept in the outbox
    skipped: int = 0          # rows that cannot make a call (e.g. src not a number)
    skipped_by: Dict[str, int] = field(default_factory=dict)   # reason -> count
    auth_failed: bool = False
    gave_up: bool = False     # NiMbox kept failing: the run stopped early (the next one goes on)
    errors: List[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"created {self.created}, already there {self.exists + self.known} "
                f"({self.known} known, {self.exists} answered by NiMbox), rejected {self.rejected}, "
                f"failed {self.failed}; outbox {self.outbox}, CDR rows {self.rows}, calls {self.calls}, "
                f"skipped {self.skipped}"
                + (" (" + ", ".join(f"{r}: {n}" for r, n in sorted(self.skipped_by.items())) + ")"
                   if self.skipped_by else ""))


class Sender:
    """A bounded pool of workers, each with its own NimboxClient (keep-alive connection)."""

    def __init__(self, cfg, concurrency: int):
        self.cfg = cfg
        self.concurrency = concurrency
        self._local = threading.local()
        self._clients: List[client.NimboxClient] = []
        self._lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="nimbox")

    def _client(self) -> client.NimboxClient:
        c = getattr(self._local, "client", None)
        if c is None:
            c = client.NimboxClient.from_config(self.cfg)
            self._local.client = c
            with self._lock:
                self._clients.append(c)
        return c

    def submit(self, call: Call) -> Future:
        return self.pool.submit(lambda: self._client().create(call.params()))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for c in self._clients:
            c.close()


def window(cfg, full: bool, since: Optional[dt.datetime], now: Optional[dt.datetime] = None):
    from .call import pbx_zone
    zone = pbx_zone(cfg)
    now = now or (dt.datetime.now(zone).replace(tzinfo=None) if zone else dt.datetime.now())
    if since is None:
        n = cfg["nimbox"]
        since = now - (dt.timedelta(days=n["full_days"]) if full else dt.timedelta(hours=n["incremental_hours"]))
    return since, now + dt.timedelta(days=1)   # until: tomorrow, so a skewed clock loses nothing


class Sync:
    def __init__(self, cfg, conn, log, progress: Optional[Callable[[str], None]] = None):
        self.cfg = cfg
        self.conn = conn
        self.log = log
        self.progress = progress
        self.builder = CallBuilder(cfg)
        self.s = Summary()
        self._inflight: Dict[Future, Tuple[Call, str]] = {}
        self._results: List[Tuple[Call, str, str]] = []
        self._last_flush = time.monotonic()
        self._last_progress = 0.0
        self._sent_keys: Set[Tuple[str, str, str]] = set()   # this run's outbox keys (not resent from CDR)
        self._failures_in_a_row = 0
        self._give_up_after = max(GIVE_UP_AFTER, 2 * cfg["nimbox"]["concurrency"])

    @property
    def stopping(self) -> bool:
        return self.s.auth_failed or self.s.gave_up

    # ---- results --------------------------------------------------------------------------------

    def _collect(self, block: bool) -> None:
        if not self._inflight:
            return
        done, _ = wait(list(self._inflight), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for fut in done:
            call, origin = self._inflight.pop(fut)
            try:
                res = fut.result()
            except Exception as e:  # a bug in a worker must not lose the call: keep it pending
                res = client.Outcome(client.TEMPORARY, f"{type(e).__name__}: {e}")
            if res.kind == client.CREATED:
                self.s.created += 1
            elif res.kind == client.EXISTS:
                self.s.exists += 1
            elif res.kind == client.REJECTED:
                self.s.rejected += 1
                self.log.warning("rejected by NiMbox: %s %s -> %s: %s", call.initiated, call.source,
                                 call.destination, res.detail)
            else:
                self.s.failed += 1
                if len(self.s.errors) < 5:
                    self.s.errors.append(res.detail)
                self._failures_in_a_row += 1
                if res.auth and not self.s.auth_failed:
                    self.s.auth_failed = True
                    self.log.error("NiMbox refused the token (%s): stopping; fix [nimbox] token", res.detail)
                elif self._failures_in_a_row >= self._give_up_after and not self.s.gave_up:
                    self.s.gave_up = True
                    self.log.error("NiMbox failed %d times in a row (last: %s): stopping this run; nothing is "
                                   "lost, the next run goes on", self._failures_in_a_row, res.detail)
            if res.done:
                self._failures_in_a_row = 0
            self._results.append((call, res.kind if res.done else outbox.PENDING, res.detail))
        self._flush(force=False)

    def _flush(self, force: bool) -> None:
        if self._results and (force or len(self._results) >= FLUSH_EVERY
                              or time.monotonic() - self._last_flush >= FLUSH_SECONDS):
            outbox.record(self.conn, self._results, "sync")
            self._results = []
            self._last_flush = time.monotonic()
        if self.progress and (force or time.monotonic() - self._last_progress >= 0.5):
            self._last_progress = time.monotonic()
            self.progress(self.s.line())

    def _send(self, sender: Sender, call: Call, origin: str) -> None:
        while len(self._inflight) >= sender.concurrency:
            self._collect(block=True)
        self._inflight[sender.submit(call)] = (call, origin)
        self._collect(block=False)

    # ---- the run --------------------------------------------------------------------------------

    def run(self, full: bool = False, since: Optional[dt.datetime] = None, cdr_conn=None,
            read_cdr: bool = True) -> Summary:
        n = self.cfg["nimbox"]
        since_, until = window(self.cfg, full, since)
        sender = Sender(self.cfg, n["concurrency"])
        try:
            for call in outbox.iter_pending(self.conn):
                if self.stopping:
                    break
                self.s.outbox += 1
                self._sent_keys.add(call.key)
                self._send(sender, call, "outbox")
            self.log.info("outbox: %d pending call(s) sent; reading CDR from %s", self.s.outbox, since_)
            if read_cdr and not self.stopping:
                own = cdr_conn is None
                conn = cdr_conn or cdr.connect(self.cfg)
                stats: Dict[str, int] = {}
                try:
                    for row in cdr.calls(conn, since_, until, n["min_destination_length"], n["dispositions"], stats):
                        self.s.rows, self.s.calls = stats["rows"], stats["calls"]
                        if self.stopping:
                            break
                        if not self.builder.qualifies(row["dst"], row["disposition"]):
                            continue
                        try:
                            call = self.builder.from_cdr(row)
                        except BadCall as e:
                            self.s.skipped += 1
                            self.s.skipped_by[e.reason] = self.s.skipped_by.get(e.reason, 0) + 1
                            self.log.info("CDR row skipped (%s): calldate %s, uniqueid %r, linkedid %r: %s",
                                          e.reason, row["calldate"], row["uniqueid"], row["linkedid"], e)
                            continue
                        if call.key in self._sent_keys:
                            continue
                        state = outbox.state_of(self.conn, call)
                        if state in outbox.DONE_STATES:
                            self.s.known += 1
                            self._flush(force=False)
                            continue
                        self._send(sender, call, "cdr")
                    self.s.rows, self.s.calls = stats["rows"], stats["calls"]
                finally:
                    if own:
                        conn.close()
            while self._inflight:
                self._collect(block=True)
        finally:
            # Whatever stopped the run, what NiMbox answered is kept.
            while self._inflight:
                self._collect(block=True)
            self._flush(force=True)
            sender.close()
        if full and read_cdr:
            cutoff = (since_ - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
            removed = outbox.prune(self.conn, cutoff)
            if removed:
                self.log.info("forgot %d confirmed call(s) older than %s", removed, cutoff)
        return self.s
