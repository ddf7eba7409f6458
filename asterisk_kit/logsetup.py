"""Logging for every job: a file per job and day in [log] dir, plus stderr when run by hand.

Files are named JOB-YYYY-MM-DD.log and opened in append mode per day, so several processes of the
same job (cron runs, AGI calls) can write to one file without a rotating handler renaming it under
the others. Files older than [log] keep_days are removed when a job starts.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Optional

FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
_NAME_RE = re.compile(r"^(?P<job>[a-z0-9_-]+)-(?P<date>\d{4}-\d{2}-\d{2})\.log$")


class DailyFileHandler(logging.Handler):
    """Appends to DIR/JOB-<today>.log, switching files when the date changes."""

    def __init__(self, directory: Path, job: str):
        super().__init__()
        self.directory = Path(directory)
        self.job = job
        self._day: Optional[str] = None
        self._stream = None

    def path_for(self, day: str) -> Path:
        return self.directory / f"{self.job}-{day}.log"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            day = time.strftime("%Y-%m-%d", time.localtime(record.created))
            if day != self._day:
                self._close()
                self._stream = open(self.path_for(day), "a", encoding="utf-8")
                self._day = day
            self._stream.write(self.format(record) + "\n")
            self._stream.flush()
        except Exception:
            self.handleError(record)

    def _close(self) -> None:
        if self._stream:
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        self._close()
        super().close()


def prune(directory: Path, keep_days: int, today: Optional[_dt.date] = None) -> int:
    today = today or _dt.date.today()
    removed = 0
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return 0
    for p in entries:
        m = _NAME_RE.match(p.name)
        if not m:
            continue
        try:
            day = _dt.date.fromisoformat(m["date"])
        except ValueError:
            continue
        if (today - day).days > keep_days:
            try:
                p.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def setup(cfg, job: str, *, to_stderr: Optional[bool] = None, verbose: bool = False) -> logging.Logger:
    """Configure the root logger for JOB; returns the job's logger.

    to_stderr: None means "when stderr is a terminal" (run by hand, not from cron/AGI).
    If the log folder cannot be written, logging falls back to stderr with a warning rather than
    stopping the job.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    level = logging.DEBUG if verbose else getattr(logging, cfg["log"]["level"] if cfg else "INFO")
    root.setLevel(level)
    fmt = logging.Formatter(FORMAT)
    problem = None
    if cfg is not None:
        directory = cfg["log"]["dir"]
        try:
            os.makedirs(directory, exist_ok=True)
            probe = DailyFileHandler(directory, job)
            # Open now so an unwritable folder is reported at start, not at the first message.
            with open(probe.path_for(time.strftime("%Y-%m-%d")), "a", encoding="utf-8"):
                pass
            probe.setFormatter(fmt)
            root.addHandler(probe)
            prune(directory, cfg["log"]["keep_days"])
        except OSError as e:
            problem = f"cannot write log files in {directory}: {e}; logging to stderr"
            to_stderr = True
    if to_stderr is None:
        to_stderr = sys.stderr.isatty()
    if to_stderr:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root.addHandler(h)
    # Third-party chatter stays at WARNING unless debugging.
    for noisy in ("urllib3", "paramiko", "asyncio", "google", "selenium"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    log = logging.getLogger(f"asterisk_kit.{job}")
    if problem:
        log.warning(problem)
    return log
