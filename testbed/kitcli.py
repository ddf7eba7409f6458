"""Run the installed `asterisk-kit` command as a real subprocess (what cron and admins do)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "asterisk-kit"


def kit(config: Path, *args: str, timeout: float = 120, env=None, check: bool = False):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([str(BIN), "--config", str(config), *args], capture_output=True, text=True,
                       timeout=timeout, env=e)
    if check and r.returncode != 0:
        raise AssertionError(f"asterisk-kit {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r
