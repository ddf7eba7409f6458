"""A running `asterisk-kit web` (real subprocess, real HTTP) for a given config file."""
from __future__ import annotations

import os
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from testbed.asterisk import free_port
from testbed.kitcli import BIN


class WebServer:
    def __init__(self, config: Path, port: int = 0, tls: bool = False):
        self.config = Path(config)
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.proc = None
        # The health probe only asks "is it up"; the tests check the certificate themselves.
        self._probe_ctx = ssl._create_unverified_context() if tls else None

    def start(self, timeout: float = 20.0) -> "WebServer":
        self.log = open(self.config.parent / f"web-{self.port}.out", "wb")
        self.proc = subprocess.Popen([str(BIN), "--config", str(self.config), "web", "--listen", "127.0.0.1",
                                      "--port", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"asterisk-kit web exited {self.proc.returncode}: {self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2, context=self._probe_ctx) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"asterisk-kit web did not answer in {timeout} s: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.config.parent / f"web-{self.port}.out").read_text(errors="replace")

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode if self.proc else 0
