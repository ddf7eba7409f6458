"""Logging for every job: a file per job and day in [log] dir, plus stderr when run by hand.

Files are named JOB-YYYY-MM-DD.log and opened in append mode per day, so several processes of the
same job (cron runs, AGI calls) can write to one file without a rotating handler renaming it under
the others. Files older than [log] keep_days are removed when a job starts. Files are created
0640 whatever the umask: they can hold phone numbers and errors of the integrations.

A job that cannot write its log folder stops with LogDirError (the CLI prints it and sends it to
syslog): cron throws stderr away, so a silent fallback would leave the failure recorded nowhere.
Only the AGI, which must never hurt a call, falls back to stderr and syslog (fallback=True).
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import List, Optional, TextIO

LOG_MODE = 0o640
FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
_NAME_RE = re.compile(r"^(?P<job>[a-z0-9_-]+)-(?P<date>\d{4}-\d{2}-\d{2})\.log$")


class DailyFileHandler(logging.Handler):
    """Appends to DIR/JOB-<today>.log, switching files when the date changes."""

    def __init__(self, directory: Path, job: str):
        super().__init__()
        self.directory = Path(directory)
        self.job = job
        self._day: Optional[str] = None
        self._stream: Optional[TextIO] = None

    def path_for(self, day: str) -> Path:
        return self.directory / f"{self.job}-{day}.log"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            day = time.strftime("%Y-%m-%d", time.localtime(record.created))
            if day != self._day:
                self._close()
                self._stream = open_log(self.path_for(day))
                self._day = day
            stream = self._stream
            assert stream is not None
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)

    def _close(self) -> None:
        if self._stream:
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        self._close()
        super().close()


def open_log(path: Path):
    """Append to PATH, creating it 0640 (not world-readable even under umask 022)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_MODE)
    return os.fdopen(fd, "a", encoding="utf-8")


class LogDirError(Exception):
    """The job's log folder cannot be written."""


def syslog_handler(cfg, job: str) -> Optional[logging.Handler]:
    """A handler to the local syslog ([log] syslog socket, /dev/log by default), or None when off
    or absent. Tagged asterisk-kit-JOB like the cron lines' `logger -t`."""
    from logging.handlers import SysLogHandler
    address = str(cfg["log"].get("syslog", "/dev/log")) if cfg is not None else "/dev/log"
    if not address or not os.path.exists(address):
        return None
    try:
        h = SysLogHandler(address=address, facility=SysLogHandler.LOG_USER)
    except OSError:
        return None
    h.ident = f"asterisk-kit-{job}: "
    h.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    return h


def to_syslog(cfg, job: str, message: str, level: int = logging.ERROR) -> bool:
    """Send one message to syslog now (e.g. why a job could not start). True when sent."""
    h = syslog_handler(cfg, job)
    if h is None:
        return False
    try:
        h.emit(logging.LogRecord("asterisk_kit", level, __file__, 0, message, None, None))
        return True
    finally:
        h.close()


def current_files() -> List[Path]:
    """Today's log files of the handlers set up by setup() (to point the admin at them)."""
    return [h.path_for(time.strftime("%Y-%m-%d")) for h in logging.getLogger().handlers
            if isinstance(h, DailyFileHandler)]


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


def setup(cfg, job: str, *, to_stderr: Optional[bool] = None, verbose: bool = False,
          fallback: bool = False) -> logging.Logger:
    """Configure the root logger for JOB; returns the job's logger.

    to_stderr: None means "when stderr is a terminal" (run by hand, not from cron/AGI).
    If the log folder cannot be written: LogDirError, unless fallback (the AGI), where logging
    goes on to stderr and syslog with a warning rather than stopping the handler.
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
            with open_log(probe.path_for(time.strftime("%Y-%m-%d"))):
                pass
            probe.setFormatter(fmt)
            root.addHandler(probe)
            prune(directory, cfg["log"]["keep_days"])
        except OSError as e:
            if not fallback:
                raise LogDirError(f"cannot write log files in {directory} ([log] dir): {e}") from None
            problem = f"cannot write log files in {directory} ([log] dir): {e}; logging to stderr and syslog"
            to_stderr = True
            sl = syslog_handler(cfg, job)
            if sl is not None:
                sl.setLevel(logging.WARNING)
                root.addHandler(sl)
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
