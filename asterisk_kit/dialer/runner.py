"""Executing a run: paced hand-over of call files, outcomes collected, stop honoured.

Crash-safety: a call file is renamed into the spool first and its row marked `spooled` after; if
the process dies in between, the next start sees the file in outgoing/ or outgoing_done/ and marks
the row without spooling it again. So a number is never dialled twice in a run, and never forgotten.
"""
from __future__ import annotations

import logging
import re
import time
from typing import Callable, Optional

from .. import storage
from . import store
from .callfile import CallFileError, Renderer, Spool, archived_status, being_dialled, file_name, parse_name

# Dialplan-reported DIALSTATUS of the outside leg -> result
_DIALSTATUS = {"BUSY": "busy", "NOANSWER": "no_answer", "CANCEL": "no_answer", "CONGESTION": "failed",
               "CHANUNAVAIL": "failed", "DONTCALL": "failed", "TORTURE": "failed", "INVALIDARGS": "failed"}
# Asterisk's Status: line of an archived call file -> result when the dialplan reported nothing
_FILE_STATUS = {"Completed": "answered", "Expired": "no_answer", "Failed": "failed"}
_LOCAL_CALL = re.compile(r"Local/[0-9]+@avtoobzvon(-ivr)?-[0-9a-f]+;1$")


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
        self.ami = None
        self.refused = False
        self._refusal_logged = -1e9

    def channels(self) -> Optional[int]:
        from ..ami import AmiActionError, AmiClient, AmiError, ami_credentials
        from ..amiroles import refusal_hint
        self.refused = False
        try:
            if self.ami is None:
                self.ami = AmiClient.from_config(self.cfg, "dialer").connect()   # [dialer] ami_user, else [asterisk]
            _, events = self.ami.list_action("CoreShowChannels")
            return sum(1 for e in events if _LOCAL_CALL.match(e.get("Channel", "")))
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

    def count(self, run_id: int) -> Optional[int]:
        """Calls in progress; None when AMI refuses to tell (then nothing is handed over)."""
        files = len(self.spool.waiting(run_id))
        chans = self.channels()
        if self.refused:
            return None
        return max(files, chans or 0)

    def close(self) -> None:
        if self.ami is not None:
            try:
                self.ami.close()
            except Exception:
                pass
            self.ami = None


class Stalled(Exception):
    """Asterisk does not take the run's call files (pbx_spool not loaded, wrong spool_dir)."""


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

    # ---- the run ---------------------------------------------------------------------------------

    def execute(self, run_id: int) -> str:
        conn, d = self.conn, self.d
        r = store.run(conn, run_id)
        if r is None or r["status"] not in store.ACTIVE:
            raise ValueError(f"run {run_id} is not active")
        with storage.transaction(conn):
            store.set_run(conn, run_id, status="running" if r["status"] != "stopping" else "stopping",
                          started=r["started"] or time.time())
        self.log.info("run %d: starting (%s)", run_id, "resumed" if r["started"] else r["trigger"])
        self._recover(run_id)
        try:
            self._hand_over(run_id)
            self._await_outcomes(run_id)
        except Stalled as e:
            self.log.error("run %d: %s", run_id, e)
            self._withdraw(run_id, reason="not picked up by Asterisk")
            return self._close(run_id, error=str(e))
        finally:
            self.in_progress.close()
        return self._close(run_id)

    def _recover(self, run_id: int) -> None:
        """Rows left `pending` by a killed process whose call file Asterisk already has."""
        found = [c["number"] for c in self._pending(run_id, None)
                 if self.spool.seen(file_name(run_id, c["number"]))]
        if found:
            with storage.transaction(self.conn):
                for n in found:
                    self.conn.execute("UPDATE dialer_calls SET state = 'spooled', spooled = ? "
                                      "WHERE run_id = ? AND number = ? AND state = 'pending'", (time.time(), run_id, n))
            self.log.warning("run %d: %d call file(s) were handed over before a crash; not spooled again",
                             run_id, len(found))

    def _pending(self, run_id: int, limit: Optional[int]):
        sql = "SELECT number, digit FROM dialer_calls WHERE run_id = ? AND state = 'pending' ORDER BY seq"
        return self.conn.execute(sql + (f" LIMIT {int(limit)}" if limit else ""), (run_id,)).fetchall()

    def _stopping(self, run_id: int) -> bool:
        return store.run(self.conn, run_id)["status"] == "stopping"

    def _hand_over(self, run_id: int) -> None:
        conn, d = self.conn, self.d
        batch = (conn.execute("SELECT max(batch) FROM dialer_calls WHERE run_id = ?", (run_id,)).fetchone()[0] or 0)
        total = conn.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ?", (run_id,)).fetchone()[0]
        # Counted once and kept up to date here: counting the pending rows per batch made a run quadratic.
        left = conn.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ? AND state = 'pending'",
                            (run_id,)).fetchone()[0]
        while left:
            if self._stopping(run_id):
                return
            self.collect(run_id)
            busy = self.in_progress.count(run_id)
            room = 0 if busy is None else d["max_in_progress"] - busy
            if room <= 0:
                self._wait(run_id, 1.0)
                continue
            rows = self._pending(run_id, min(d["bundle"], room))
            if not rows:
                return
            batch += 1
            files, bad = [], []
            for c in rows:
                try:
                    files.append((c["number"], self.renderer.render(run_id, c["number"], c["digit"])))
                except CallFileError as e:      # e.g. a row an older version stored: fail it, go on
                    bad.append((c["number"], str(e)))
            self.spool.hand_over([(file_name(run_id, n), text) for n, text in files])
            now = time.time()
            with storage.transaction(conn):
                conn.executemany("UPDATE dialer_calls SET state = 'spooled', spooled = ?, batch = ? "
                                 "WHERE run_id = ? AND number = ? AND state = 'pending'",
                                 [(now, batch, run_id, n) for n, _ in files])
                conn.executemany("UPDATE dialer_calls SET state = 'done', result = 'failed', finished = ?, "
                                 "batch = ?, note = ? WHERE run_id = ? AND number = ? AND state = 'pending'",
                                 [(now, batch, reason, run_id, n) for n, reason in bad])
            for n, reason in bad:
                self.log.error("run %d: number %r not dialled: %s", run_id, n, reason)
            left = max(0, left - len(rows))
            self.log.info("run %d: batch %d handed %d call file(s) to Asterisk, %d left", run_id, batch, len(files),
                          left)
            self.progress(f"run {run_id}: {total - left}/{total} handed over (batch {batch})")
            if left and d["timeout"]:
                self._wait(run_id, d["timeout"])

    def _wait(self, run_id: int, seconds: float) -> None:
        """A pause that keeps working: outcomes are collected and the spool watched every second."""
        end = time.monotonic() + seconds
        while not self._stopping(run_id):
            self.collect(run_id)
            self._check_spool(run_id)
            rest = end - time.monotonic()
            if rest <= 0:
                return
            self.sleep(min(1.0, rest))

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

    def _await_outcomes(self, run_id: int) -> None:
        """Until every call of the run has its outcome. While Asterisk holds a call file of the run (ringing,
        or waiting for a retry) the run stays open; result_wait_seconds counts once none is left."""
        deadline = None
        while True:
            if self._stopping(run_id):
                self._withdraw(run_id)
            self.collect(run_id)
            self._check_spool(run_id)
            open_ = self.conn.execute("SELECT count(*) FROM dialer_calls WHERE run_id = ? AND state = 'spooled'",
                                      (run_id,)).fetchone()[0]
            if not open_:
                return
            if self.spool.waiting(run_id):
                deadline = None
            elif deadline is None:
                deadline = time.monotonic() + self.d["result_wait_seconds"]
            elif time.monotonic() > deadline:
                return
            self.sleep(1.0)

    def _withdraw(self, run_id: int, reason: str = "") -> None:
        """Stop: nothing more is handed over, and call files waiting in the spool (not picked up yet,
        or waiting for a retry) are taken back. A call Asterisk is dialling right now finishes: its
        outcome is collected, and if it ends with a retry scheduled, the next pass takes that back."""
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
        """Outcomes of finished calls: Asterisk's archived call files plus what the dialplan reported."""
        done = self.spool.finished(run_id)
        if not done:
            return 0
        now, settled = time.time(), []
        with storage.transaction(self.conn):
            for name, path in done.items():
                parsed = parse_name(name)
                if not parsed:
                    continue
                row = self.conn.execute("SELECT answered, dialstatus, state FROM dialer_calls WHERE run_id = ? "
                                        "AND number = ?", (run_id, parsed[1])).fetchone()
                if row is None:
                    continue
                if row["state"] == "spooled":
                    status = archived_status(path)
                    self.conn.execute("UPDATE dialer_calls SET state = 'done', result = ?, file_status = ?, "
                                      "finished = ? WHERE run_id = ? AND number = ?",
                                      (outcome(row["answered"], row["dialstatus"], status), status, now,
                                       run_id, parsed[1]))
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
            stopping = store.run(self.conn, run_id)["status"] == "stopping"
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
        self.log.info("run %d %s: %s", run_id, status, ", ".join(f"{k or '-'}={v}" for k, v in sorted(summary.items(), key=str))
                      or "no numbers")
        return status
