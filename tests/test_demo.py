"""scripts/demo.sh: quiet, truthful, and stoppable: a SIGTERM stops everything it started."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from testbed.asterisk import REPO, free_port

pytestmark = [pytest.mark.asterisk]


def _children(pid: int) -> set:
    """Every live descendant of PID (from /proc)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, pp in parent.items():
            if pp == p and child not in out:
                out.add(child)
                todo.append(child)
    return out


def _mentioning(text: str) -> set:
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    out.add(int(d.name))
            except OSError:
                continue
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_demo_serves_then_stops_everything_on_sigterm(tmp_path):
    demo_dir = tmp_path / "demo"
    port = free_port()
    env = dict(os.environ, DEMO_DIR=str(demo_dir), DEMO_PORT=str(port), DEMO_MEMCACHED_PORT=str(free_port()),
               DEMO_SECONDS="600")               # a safety net: the demo ends itself even if this test dies
    out = open(tmp_path / "demo.out", "wb")
    proc = subprocess.Popen(["bash", str(REPO / "scripts" / "demo.sh")], stdout=out, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    started = set()
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (tmp_path / "demo.out").read_text()
            assert time.monotonic() < deadline, "the demo did not serve /login in time"
            try:
                if requests.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        started = _children(proc.pid) | _mentioning(str(demo_dir))
        text = (tmp_path / "demo.out").read_text()
        # web app, BLF daemon, memcached, Asterisk, the dialer tick loop
        assert len(started) >= 5, (started, text)
        assert "blf daemon: running, AMI up" in text and "FAILED" not in text, text
        assert "Traceback" not in text and "!!" not in text and "Deprecat" not in text, text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in started):
        time.sleep(0.2)
    left = sorted(p for p in started | _mentioning(str(demo_dir)) if _alive(p))
    assert not left, [(p, (Path("/proc") / str(p) / "cmdline").read_bytes()) for p in left]
    assert "asterisk-kit demo stopped" in (tmp_path / "demo.out").read_text()
