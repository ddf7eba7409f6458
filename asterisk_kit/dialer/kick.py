"""Start a `dialer tick` process now (detached), so a run started or resumed on a page goes on at once
instead of at the next cron minute."""
from __future__ import annotations

import os
import subprocess
import sys


def kick(cfg) -> None:
    cmd = [sys.executable, "-m", "asterisk_kit"]
    if cfg.path:
        cmd += ["--config", str(cfg.path)]
    subprocess.Popen(cmd + ["dialer", "tick"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True, env=dict(os.environ))
