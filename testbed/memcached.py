"""A private memcached (Debian's) on a free loopback port; can be killed and restarted on the same
port to play a memcached restart."""
from __future__ import annotations

import socket
import subprocess
import time
from typing import Optional

from testbed.asterisk import free_port

MEMCACHED = "/usr/bin/memcached"


class Memcached:
    def __init__(self, port: int = 0):
        self.port = port or free_port()
        self.proc: Optional[subprocess.Popen] = None

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> "Memcached":
        # -u root only matters when run as root (memcached refuses root without it); -U 0: no UDP
        self.proc = subprocess.Popen([MEMCACHED, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
                                      "-m", "64", "-u", "root"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"memcached exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"version\r\n")
                    if s.recv(100).startswith(b"VERSION"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("memcached did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> "Memcached":
        self.stop()
        return self.start()

    def client(self):
        from pymemcache.client.base import Client
        return Client(("127.0.0.1", self.port), connect_timeout=2, timeout=2)
