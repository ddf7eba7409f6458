"""Runs of the scheduled jobs, recorded in the store for `asterisk-kit status`, /status and alerts.

The CLI records every command in recorded() (the capabilities' cron jobs): a row when it starts
(status `running`) and its end (ok / failed / locked). A run killed before its end stays `running`
with its pid; readers see that the pid is gone and call it `killed`. Error text is one line without
the config's secrets.
"""
from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
from typing import Dict, List, Optional

from . import storage


def recorded() -> Dict[str, str]:
    """"command subcommand" -> the capability (config section) it belongs to: every cron job a
    capability declares (options such as --full are the same job)."""
    from .capabilities import all_capabilities
    return {" ".join(job.args.split()[:2]): cap.name for cap in all_capabilities() for job in cap.cron}

KEEP_RUNS = 200        # per job; older rows are pruned when a run starts
FAILED_STATES = ("failed", "killed")

MIGRATIONS = [
    """CREATE TABLE job_runs (
         id INTEGER PRIMARY KEY, job TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
         started REAL NOT NULL, ended REAL, status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '');
       CREATE INDEX job_runs_job ON job_runs (job, id)""",
]


def connect(cfg) -> sqlite3.Connection:
    conn = storage.connect(cfg)
    storage.migrate(conn, "job_runs", MIGRATIONS)
    return conn


def secrets_of(cfg) -> List[str]:
    from .config import SCHEMA
    out = []
    for name in cfg.sections():
        sch = SCHEMA.get(name.split(":", 1)[0])
        if sch is None:
            continue
        for key, spec in sch.keys.items():
            v = cfg.get(name, key)
            if spec.secret and isinstance(v, str) and len(v) >= 3:
                out.append(v)
    return out


def clean_error(text: str, secrets: List[str], limit: int = 500) -> str:
    one = " ".join(str(text).split())
    for s in sorted(secrets, key=len, reverse=True):
        one = one.replace(s, "***")
    return one[:limit]


class LastError(logging.Handler):
    """Keeps the last ERROR message logged during the run (the job's own words for its failure)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.message = record.getMessage()
        except Exception:
            pass


class Recorder:
    """start() before the command, end(status, error) after it. Never lets the store's trouble
    fail the job: the run itself matters more than its record."""

    def __init__(self, cfg, job: str):
        self.cfg, self.job = cfg, job
        self.row: Optional[int] = None
        self.last_error = LastError()
        self.log = logging.getLogger("asterisk_kit.jobruns")

    def start(self) -> None:
        # on the package logger: logsetup.setup() replaces the root logger's handlers
        logging.getLogger("asterisk_kit").addHandler(self.last_error)
        try:
            conn = connect(self.cfg)
            with storage.transaction(conn):
                cur = conn.execute("INSERT INTO job_runs (job, host, pid, started, status) VALUES (?, ?, ?, ?, ?)",
                                   (self.job, socket.gethostname(), os.getpid(), time.time(), "running"))
                row = self.row = int(cur.lastrowid or 0)
                conn.execute("DELETE FROM job_runs WHERE job = ? AND id <= ?", (self.job, row - KEEP_RUNS))
            conn.close()
        except sqlite3.Error as e:
            self.log.warning("could not record the start of %s in the store: %s", self.job, e)

    def end(self, status: str, error: str = "") -> None:
        logging.getLogger("asterisk_kit").removeHandler(self.last_error)
        if self.row is None:
            return
        if status == "failed" and not error:
            error = self.last_error.message or "failed (see the log)"
        try:
            conn = connect(self.cfg)
            with storage.transaction(conn):
                conn.execute("UPDATE job_runs SET ended = ?, status = ?, error = ? WHERE id = ?",
                             (time.time(), status, clean_error(error, secrets_of(self.cfg)), self.row))
            conn.close()
        except sqlite3.Error as e:
            self.log.warning("could not record the end of %s in the store: %s", self.job, e)


def _alive(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return True          # another machine's run: cannot tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recent(conn: sqlite3.Connection, job: str, limit: int = 50) -> List[dict]:
    """Latest runs first; a `running` row whose process is gone reads as `killed`."""
    rows = conn.execute("SELECT * FROM job_runs WHERE job = ? ORDER BY id DESC LIMIT ?", (job, limit)).fetchall()
    out = []
    for r in rows:
        d = dict(r)
        if d["status"] == "running" and not _alive(d["host"], d["pid"]):
            d["status"] = "killed"
            d["error"] = d["error"] or "the run ended without recording its end (killed?)"
        out.append(d)
    return out


def summary(conn: sqlite3.Connection, job: str) -> dict:
    """{last_ok, last_run, last_error, failed_in_a_row, running} for JOB."""
    runs = recent(conn, job)
    out: dict = {"job": job, "last_ok": None, "last_run": None, "last_error": None, "failed_in_a_row": 0,
                 "running": None}
    streak_open = True
    for r in runs:
        if r["status"] == "running":
            out["running"] = out["running"] or r
            continue
        if r["status"] == "locked":
            continue
        if out["last_run"] is None:
            out["last_run"] = r
        if r["status"] == "ok":
            streak_open = False
            if out["last_ok"] is None:
                out["last_ok"] = r
        elif r["status"] in FAILED_STATES:
            if streak_open:
                out["failed_in_a_row"] += 1
            if out["last_error"] is None:
                out["last_error"] = r
    return out
