"""Click-to-dial latency: the user's click (POST /blf/action to the real `asterisk-kit web`) until the
user's own phone rings (baresip on PJSIP/101 of a private Asterisk 22; seen as a Ringing PJSIP/101
channel), next to a bare baseline in the same run: the same Originate sent on an AMI connection that
is already logged in, no web, no permission check, no audit.

`.venv/bin/python benchmarks/panel_actions.py [TRIES]`   (default 20)
"""
from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from asterisk_kit.ami import AmiClient  # noqa: E402
from testbed.kitcli import BIN, kit  # noqa: E402
from testbed.panel import PANEL_SECRET, PANEL_USER, Pbx, kit_config  # noqa: E402
from testbed.webserver import WebServer  # noqa: E402

PASSWORD = "bench panel 1"


def ringing_after(watch: AmiClient, start: float, timeout: float = 10.0) -> float:
    deadline = start + timeout
    while time.monotonic() < deadline:
        rows = watch.list_action("CoreShowChannels")[1]
        if any(r.get("Channel", "").startswith("PJSIP/101-") and r.get("ChannelStateDesc") == "Ringing" for r in rows):
            return time.monotonic() - start
        time.sleep(0.002)
    raise RuntimeError("101 did not ring")


def idle(pbx: Pbx) -> None:
    pbx.hangup_all()
    time.sleep(0.3)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main(tries: int = 20) -> None:
    d = Path(tempfile.mkdtemp(prefix="bench-panel-"))
    pbx = Pbx(d).start()
    srv = None
    try:
        cfg = kit_config(d / "kit", pbx.a, blf="actions_per_minute = 1000\n")
        pbx.install_kit_dialplan(cfg)
        subprocess.run([str(BIN), "--config", str(cfg), "user", "add", "op", "--password-stdin"],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        kit(cfg, "user", "set", "op", "--extension", "101", "--allow", "dial", check=True)
        pbx.start_phones()
        srv = WebServer(cfg).start()
        s = requests.Session()
        token = re.search(r'name="csrf" value="([^"]+)"', s.get(srv.url + "/login").text).group(1)
        s.post(srv.url + "/login", data={"csrf": token, "user": "op", "password": PASSWORD, "next": "/"})
        s.headers["X-CSRF-Token"] = re.search(r'name="csrf" value="([^"]+)"', s.get(srv.url + "/").text).group(1)
        s.headers["Accept"] = "application/json"
        a = pbx.a
        watch = AmiClient("127.0.0.1", a.ami_port, a.ami_user, a.ami_secret).connect()
        bare = AmiClient("127.0.0.1", a.ami_port, PANEL_USER, PANEL_SECRET).connect()
        kit_t, bare_t = [], []
        for _ in range(tries):
            idle(pbx)
            t0 = time.monotonic()
            r = s.post(srv.url + "/blf/action", json={"action": "dial", "target": "102"}, timeout=10)
            assert r.status_code == 200, r.text
            kit_t.append(ringing_after(watch, t0))
            idle(pbx)
            t0 = time.monotonic()
            bare.action("Originate", Channel="Local/101@asterisk-kit-panel-ring", Context="panel-dial", Exten="102",
                        Priority="1", Async="true", Timeout="30000")
            bare_t.append(ringing_after(watch, t0))
        idle(pbx)
        watch.close()
        bare.close()
        ms = lambda x: f"{x * 1000:7.1f} ms"  # noqa: E731
        print(f"click-to-dial -> own phone ringing, {tries} tries")
        print(f"{'':28}{'p50':>10}{'p95':>10}{'max':>10}")
        for name, xs in (("kit (HTTP, checks, audit)", kit_t), ("bare AMI Originate", bare_t)):
            print(f"{name:28}{ms(statistics.median(xs)):>10}{ms(pct(xs, 95)):>10}{ms(max(xs)):>10}")
        print(f"ratio p50 kit/bare: {statistics.median(kit_t) / statistics.median(bare_t):.2f}")
    finally:
        if srv:
            srv.stop()
        pbx.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
