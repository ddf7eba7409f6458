"""Job locks: one run of a job at a time (cron runs that overlap, a manual run during cron).

flock() on a file in the data dir: the kernel drops it when the process dies, even by SIGKILL,
so a killed run never leaves a stale lock behind.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Optional

EXIT_LOCKED = 75  # EX_TEMPFAIL: "try again later", what cron wrappers expect


class LockBusy(Exception):
    pass


class JobLock:
    def __init__(self, data_dir: Path, name: str):
        self.path = Path(data_dir) / "locks" / f"{name}.lock"
        self._fd: Optional[int] = None

    def acquire(self) -> "JobLock":
        if self._fd is not None:        # already ours (ctx.lock() acquired, then used in `with`)
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise LockBusy(f"another run holds {self.path} (pid {holder}); not starting a second one") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "JobLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
