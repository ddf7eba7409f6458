"""Executing runs: paced hand-over of call files, outcomes collected, retries re-spooled, stop honoured.

One process works on every active run (the runs of different campaigns overlap), one step per run
per second: collect outcomes, hand over a batch when the run's pause is over, its campaign is not
paused and its window is open, within the run's own cap and the PBX-wide [dialer] max_in_progress
counted over all runs.

Crash-safety: a call file (one name per attempt) is renamed into the spool first and its row marked
`spooled` after; if the process dies in between, the next start sees the file in outgoing/ or
outgoing_done/ and marks the row without spooling it again. An outcome that earns a retry puts the
row back to `pending` with `next_at` in the same transaction that records it, and the archived file
is removed only after. So a number is called at most once per attempt it is due, and never forgotten.
"""
from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections import Counter
from typing import Any, Callable, Dict, Optional, Tuple

from .. import storage
from . import campaigns, schedule, store
from .callfile import CallFileError, Renderer, Spool, archived_status, being_dialled, file_name, parse_name

# Dialplan-reported DIALSTATUS of the outside leg -> result
_DIALSTATUS = {"BUSY": "busy", "NOANSWER": "no_answer", "CANCEL": "no_answer", "CONGESTION": "failed",
               "CHANUNAVAIL": "failed", "DONTCALL": "failed", "TORTURE": "failed", "INVALIDARGS": "failed"}
# Asterisk's Status: line of an archived call file -> result when the dialplan reported nothing
_FILE_STATUS = {"Completed": "answered", "Expired": "no_answer", "Failed": "failed"}
_LOCAL_CALL = re.compile(r"Local/([0-9]+)@avtoobzvon(?:-ivr)?-[0-9a-f]+;1$")


def outcome(answered: int, dialstatus: Optional[str], file_status: Optional[str]) -> str:
    if answered:
        return "answered"
    if dialstatus in _DIALSTATUS:
        return _DIALSTATUS[dialstatus]
    return _FILE_STATUS.get(file_status or "", "failed")


class InProgress:
    """Calls of the autodialer in progress, measured in Asterisk: its Local channels (AMI
    CoreShowChannels) and our call files it still holds in outgoing/ (waiting or being dialled)."""

    def __init__(self, cfg, spool: Spool, log: logging.Logger):
        self.cfg, self.spool, self.log = cfg, spool, log
        self.ami: Optional[Any] = None
        self.refused = False
        self._refusal_logged = -1e9

    def channels(self) -> Optional[Counter]:
        """The autodialer's calls Asterisk has channels for, per number (None: AMI cannot tell)."""
        from ..ami import AmiActionError, AmiClient, AmiError, ami_credentials
        from ..amiroles import refusal_hint
        self.refused = False
        try:
            if self.ami is None:
                self.ami = AmiClient.from_config(self.cfg, "dialer").connect()   # [dialer] ami_user, else [asterisk]
            _, events = self.ami.list_action("CoreShowChannels")
            return Counter(m.group(1) for m in (_LOCAL_CALL.match(e.get("Channel", "")) for e in events) if m)
        except AmiActionError as e:
            # Login or CoreShowChannels refused: counting zero calls would hand everything over at once.
            self.refused = True
            if time.monotonic() - self._refusal_logged > 60:
                self._refusal_logged = time.monotonic()
                user = ami_credentials(self.cfg, "dialer")[0]
                hint = f"; {refusal_hint(user, e.action)}" if e.permission_denied else ""
                self.log.error("cannot count calls in progress, nothing more handed over until AMI allows it: %s%s",
                               e, hint)
            self.close()
            return None
        except (AmiError, OSError) as e:
            self.log.warning("cannot count calls through AMI (%s); counting call files only", e)
            self.close()
            return None

    def count(self, run_id: Optional[int] = None,
              in_run: Callable[[str], bool] = lambda number: True) -> Optional[Tuple[int, int]]:
        """(calls in progress of the whole autodialer, of RUN_ID), measured in Asterisk; None when AMI
        refuses to tell (then nothing is handed over). Per number, the larger of its call files still
        in outgoing/ and its Local channels: a file not yet picked up has no channel, a call whose file
        was just archived may still show one (max() of the two totals undercounted when both kinds were
        there at once: 7 calls under a cap of 6). A run's share: its files and the channels of the
        numbers IN_RUN says are its own (a number in two active runs counts in both: never too few)."""
        waiting = self.spool.waiting()
        chans = self.channels()
        if self.refused:
            return None
        chans = chans or Counter()
        names = [parse_name(p.name) or (0, p.name, 0) for p in waiting]
        files = Counter(n for _, n, _ in names)
        total = sum(max(files[n], chans[n]) for n in set(files) | set(chans))
        if run_id is None:
            return total, total
        mine = Counter(n for r, n, _ in names if r == run_id)
        theirs = Counter({n: k for n, k in chans.items() if n in mine or in_run(n)})
        return total, sum(max(mine[n], theirs[n]) for n in set(mine) | set(theirs))

    def close(self) -> None:
        if self.ami is not None:
            try:
                self.ami.close()
            except Exception:
                pass
            self.ami = None


class Stalled(Exception):
    """Asterisk does not take the run's call files (pbx_spool not loaded, wrong spool_dir)."""


class _RunState:
    """What a run's step keeps between seconds; rebuilt from the store after a restart."""

    def __init__(self, conn, row) -> None:
        self.id = row["id"]
        self.settings = store.run_settings(row)
        self.batch = conn.execute("SELECT max(batch) FROM dialer_calls WHERE run_id = ?", (self.id,)).fetchone()[0] or 0
        self.total = conn.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ?", (self.id,)).fetchone()[0]
        self.next_batch = 0.0           # monotonic time the pause ends
        self.deadline: Optional[float] = None


class Runner:
    def __init__(self, cfg, conn, log: logging.Logger, progress: Optional[Callable[[str], None]] = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.cfg, self.conn, self.log = cfg, conn, log
        self.d = cfg["dialer"]
        self.spool = Spool(cfg)
        self.renderer = Renderer(cfg)
        self.progress = progress or (lambda s: None)
        self.sleep = sleep
        self.in_progress = InProgress(cfg, self.spool, log)
        self.states: Dict[int, _RunState] = {}
        self.finished: Dict[int, str] = {}

    # ---- all active runs ---------------------------------------------------------------------------

    def execute(self, run_id: int) -> str:
        """Work until RUN_ID (and every other active run) has ended; RUN_ID's final status."""
        r = self._row(run_id)
        if r is None or r["status"] not in store.ACTIVE:
            raise ValueError(f"run {run_id} is not active")
        self.execute_all()
        return self.finished.get(run_id) or self._row(run_id)["status"]

    def execute_all(self) -> None:
        try:
            while True:
                rows = store.active_runs(self.conn)
                if not rows:
                    return
                for r in rows:
                    if r["id"] not in self.states:
                        self._start(r)
                    self._step(r["id"])
                if store.active_runs(self.conn):
                    self.sleep(1.0)
        finally:
            self.in_progress.close()

    def _start(self, r) -> None:
        run_id = r["id"]
        with storage.transaction(self.conn):
            store.set_run(self.conn, run_id, status="running" if r["status"] != "stopping" else "stopping",
                          started=r["started"] or time.time())
        self.log.info("run %d (campaign %d): starting (%s)", run_id, r["campaign_id"],
                      "resumed" if r["started"] else r["trigger"])
        self.states[run_id] = _RunState(self.conn, store.run(self.conn, run_id))
        self._recover(run_id)

    def _step(self, run_id: int) -> None:
        st = self.states[run_id]
        try:
            if self._stopping(run_id):
                self._withdraw(run_id)
            self.collect(run_id)
            self._check_spool(run_id)
            if not self._stopping(run_id):
                self._hand_over(st)
            if self._settled(st):
                self._finish(run_id)
        except Stalled as e:
            self.log.error("run %d: %s", run_id, e)
            self._withdraw(run_id, reason="not picked up by Asterisk")
            self._finish(run_id, error=str(e))

    def _finish(self, run_id: int, error: str = "") -> None:
        self.finished[run_id] = self._close(run_id, error=error)
        self.states.pop(run_id, None)

    # ---- one run -----------------------------------------------------------------------------------

    def _recover(self, run_id: int) -> None:
        """Rows left `pending` by a killed process whose call file (of their next attempt) Asterisk already has."""
        found = [(c["number"], c["attempts"] + 1) for c in self._pending(run_id, None, due_only=False)
                 if self.spool.seen(file_name(run_id, c["number"], c["attempts"] + 1))]
        if found:
            with storage.transaction(self.conn):
                for n, attempt in found:
                    self.conn.execute("UPDATE dialer_calls SET state = 'spooled', spooled = ?, attempts = ?, "
                                      "next_at = NULL WHERE run_id = ? AND number = ? AND state = 'pending'",
                                      (time.time(), attempt, run_id, n))
            self.log.warning("run %d: %d call file(s) were handed over before a crash; not spooled again",
                             run_id, len(found))

    def _pending(self, run_id: int, limit: Optional[int], due_only: bool = True):
        sql = "SELECT number, digit, attempts FROM dialer_calls WHERE run_id = ? AND state = 'pending'"
        args: list = [run_id]
        if due_only:
            sql += " AND (next_at IS NULL OR next_at <= ?)"
            args.append(time.time())
        sql += " ORDER BY seq"
        return self.conn.execute(sql + (f" LIMIT {int(limit)}" if limit else ""), args).fetchall()

    def _row(self, run_id: int) -> sqlite3.Row:
        r = store.run(self.conn, run_id)
        if r is None:
            raise KeyError(f"run {run_id} vanished from the store")
        return r

    def _stopping(self, run_id: int) -> bool:
        return self._row(run_id)["status"] == "stopping"

    def _window_open(self, run_id: int) -> Optional[bool]:
        """For a scheduled run: is its campaign's window open now? None: the run has no window (manual)."""
        r = self._row(run_id)
        if not r["windowed"]:
            return None
        return schedule.window_open(store.windows(self.conn, r["campaign_id"]), schedule.now(self.cfg))

    def _paused(self, run_id: int) -> bool:
        r = self._row(run_id)
        c = store.campaign(self.conn, r["campaign_id"])
        return c is not None and c["state"] == "paused"

    def _hand_over(self, st: _RunState) -> None:
        run_id, conn = st.id, self.conn
        if time.monotonic() < st.next_batch or self._paused(run_id) or self._window_open(run_id) is False:
            return
        cap = int(st.settings.get("max_in_progress") or self.d["max_in_progress"])
        bundle = int(st.settings.get("bundle") or self.d["bundle"])
        busy = self.in_progress.count(run_id, lambda n: conn.execute(
            "SELECT 1 FROM dialer_calls WHERE run_id = ? AND number = ?", (run_id, n)).fetchone() is not None)
        if busy is None:
            return
        room = min(cap - busy[1], self.d["max_in_progress"] - busy[0])
        if room <= 0:
            return
        rows = self._pending(run_id, min(bundle, room))
        if not rows:
            return
        st.batch += 1
        files, bad, skipped = [], [], []
        for c in rows:
            if store.is_suppressed(conn, c["number"]):
                skipped.append(c["number"])
                continue
            try:
                attempt = c["attempts"] + 1
                files.append((c["number"], attempt,
                              self.renderer.render(run_id, c["number"], c["digit"], settings=st.settings or None)))
            except CallFileError as e:      # e.g. a row an older version stored: fail it, go on
                bad.append((c["number"], str(e)))
        self.spool.hand_over([(file_name(run_id, n, a), text) for n, a, text in files])
        now = time.time()
        with storage.transaction(conn):
            conn.executemany("UPDATE dialer_calls SET state = 'spooled', spooled = ?, batch = ?, attempts = ?, "
                             "next_at = NULL WHERE run_id = ? AND number = ? AND state = 'pending'",
                             [(now, st.batch, a, run_id, n) for n, a, _ in files])
            conn.executemany("UPDATE dialer_calls SET state = 'done', result = 'failed', finished = ?, "
                             "batch = ?, note = ? WHERE run_id = ? AND number = ? AND state = 'pending'",
                             [(now, st.batch, reason, run_id, n) for n, reason in bad])
            conn.executemany("UPDATE dialer_calls SET state = 'done', result = 'suppressed', finished = ?, "
                             "note = 'on the suppression list', next_at = NULL "
                             "WHERE run_id = ? AND number = ? AND state = 'pending'",
                             [(now, run_id, n) for n in skipped])
        for n, reason in bad:
            self.log.error("run %d: number %r not dialled: %s", run_id, n, reason)
        left = conn.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ? AND state = 'pending'",
                            (run_id,)).fetchone()[0] if len(rows) < bundle else None
        self.log.info("run %d: batch %d handed %d call file(s) to Asterisk%s", run_id, st.batch, len(files),
                      f", {left} left" if left is not None else "")
        self.progress(f"run {run_id}: batch {st.batch}, {len(files)} handed over")
        pause = st.settings.get("pause")
        st.next_batch = time.monotonic() + float(self.d["timeout"] if pause is None else pause)

    def _settled(self, st: _RunState) -> bool:
        """The run is over: nothing left to hand over now or later, and every call has its outcome (or
        result_wait_seconds passed since Asterisk held the last of its call files)."""
        run_id, conn = st.id, self.conn
        pending = conn.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ? AND state = 'pending'",
                               (run_id,)).fetchone()[0]
        spooled = conn.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ? AND state = 'spooled'",
                               (run_id,)).fetchone()[0]
        if pending:
            if self._window_open(run_id) is False and not spooled:
                with storage.transaction(conn):
                    n = store.close_pending(conn, run_id, "window_closed", "the calling window closed")
                self.log.info("run %d: window closed, %d number(s) not called", run_id, n)
                return True
            return False
        if not spooled:
            return True
        if self.spool.waiting(run_id):
            st.deadline = None
        elif st.deadline is None:
            st.deadline = time.monotonic() + self.d["result_wait_seconds"]
        elif time.monotonic() > st.deadline:
            return True
        return False

    def _check_spool(self, run_id: int) -> None:
        """Raise Stalled when a call file of the run has been due for stall_seconds and Asterisk has not
        started it. (Asterisk pushes a file's mtime into the future when it starts or re-schedules it.)"""
        limit = time.time() - self.d["stall_seconds"]
        for p in self.spool.waiting(run_id):
            try:
                due = p.stat().st_mtime
            except FileNotFoundError:
                continue
            if due < limit and not being_dialled(p):
                raise Stalled(f"Asterisk has not picked up call file {p.name} for {self.d['stall_seconds']} s: is "
                              f"pbx_spool loaded, and is [asterisk] spool_dir ({self.spool.root}) its astspooldir?")

    def _withdraw(self, run_id: int, reason: str = "") -> None:
        """Stop: nothing more is handed over (retries due later included), and call files waiting in the
        spool (not picked up yet) are taken back. A call Asterisk is dialling right now finishes and its
        outcome is collected; it earns no retry once the run is stopping."""
        taken = []
        for p in self.spool.waiting(run_id):
            if being_dialled(p):
                continue
            try:
                p.unlink()
                taken.append(parse_name(p.name)[1])
            except FileNotFoundError:
                pass                    # Asterisk finished it just now: its outcome will be collected
        with storage.transaction(self.conn):
            n = store.withdraw_pending(self.conn, run_id)
            for number in taken:    # with a reason (Asterisk never took it): failed, else withdrawn by Stop
                self.conn.execute("UPDATE dialer_calls SET state = ?, result = ?, note = ?, finished = ? "
                                  "WHERE run_id = ? AND number = ? AND state = 'spooled'",
                                  ("done" if reason else "withdrawn", "failed" if reason else "withdrawn", reason,
                                   time.time(), run_id, number))
        if n or taken:
            self.log.info("run %d: stop: %d not handed over and %d call file(s) taken back from the spool",
                          run_id, n, len(taken))

    def collect(self, run_id: int) -> int:
        """Outcomes of finished calls: Asterisk's archived call files plus what the dialplan reported. An
        outcome with attempts left under the run's retry rule goes back to `pending` after its delay; a
        pressed opt-out digit puts the number on the suppression list."""
        done = self.spool.finished(run_id)
        if not done:
            return 0
        r = self._row(run_id)
        st = store.run_settings(r) or campaigns.resolve(self.cfg, {})
        stopping = r["status"] == "stopping"
        optout_digit = st.get("optout_digit") or ""
        now, settled = time.time(), []
        with storage.transaction(self.conn):
            for name, path in done.items():
                parsed = parse_name(name)
                if not parsed:
                    continue
                number, attempt = parsed[1], parsed[2]
                row = self.conn.execute("SELECT answered, dialstatus, pressed, state, attempts, history "
                                        "FROM dialer_calls WHERE run_id = ? AND number = ?",
                                        (run_id, number)).fetchone()
                if row is None:
                    continue
                if row["state"] == "spooled" and attempt == max(1, row["attempts"]):
                    status = archived_status(path)
                    result = outcome(row["answered"], row["dialstatus"], status)
                    optout = int(bool(optout_digit) and row["pressed"] == optout_digit)
                    history = (row["history"] + "," if row["history"] else "") + result
                    extra, delay = campaigns.retry_rule(st, result)
                    if optout:
                        self.conn.execute("INSERT OR IGNORE INTO dialer_suppressed (number, added, source, note) "
                                          "VALUES (?, ?, ?, ?)", (number, now, f"run {run_id}",
                                                                  f"pressed {optout_digit}"))
                    if not optout and not stopping and row["attempts"] <= extra:
                        self.conn.execute("UPDATE dialer_calls SET state = 'pending', result = ?, file_status = ?, "
                                          "next_at = ?, history = ?, answered = 0, dialstatus = NULL, pressed = NULL "
                                          "WHERE run_id = ? AND number = ?",
                                          (result, status, now + delay, history, run_id, number))
                    else:
                        self.conn.execute("UPDATE dialer_calls SET state = 'done', result = ?, file_status = ?, "
                                          "finished = ?, history = ?, optout = ? WHERE run_id = ? AND number = ?",
                                          (result, status, now, history, optout, run_id, number))
                settled.append(path)
        for path in settled:            # recorded first, then the archive copy is removed
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        return len(settled)

    def _close(self, run_id: int, error: str = "") -> str:
        now = time.time()
        with storage.transaction(self.conn):
            stopping = self._row(run_id)["status"] == "stopping"
            if stopping or error:
                store.withdraw_pending(self.conn, run_id)
            # Calls Asterisk never archived within result_wait_seconds: what the dialplan reported
            # (answered, busy, ...) stands; only a call with no word at all is failed.
            lost = self.conn.execute("SELECT number, answered, dialstatus FROM dialer_calls "
                                     "WHERE run_id = ? AND state = 'spooled'", (run_id,)).fetchall()
            self.conn.executemany("UPDATE dialer_calls SET state = 'done', result = ?, finished = ? "
                                  "WHERE run_id = ? AND number = ?",
                                  [(outcome(c["answered"], c["dialstatus"], None), now, run_id, c["number"])
                                   for c in lost])
            status = "failed" if error else "stopped" if stopping else "done"
            note = error or (f"{len(lost)} call(s) not reported back by Asterisk's call file archive" if lost else "")
            store.set_run(self.conn, run_id, status=status, finished=now, note=note)
        summary = dict(self.conn.execute("SELECT result, count(*) FROM dialer_calls WHERE run_id = ? GROUP BY result",
                                         (run_id,)).fetchall())
        self.log.info("run %d %s: %s", run_id, status, ", ".join(f"{k or '-'}={v}"
                                                         for k, v in sorted(summary.items(), key=str))
                      or "no numbers")
        return status
