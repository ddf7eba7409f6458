"""The AGI core on the real testbed: whatever the handler does, the call goes on and the dialplan
learns the outcome in ASTERISK_KIT_AGI_STATUS (OK / FAILED)."""
import time

import pytest

from asterisk_kit.ami import AmiClient
from asterisk_kit.install import agi_command
from testbed.asterisk import kit_section

pytestmark = pytest.mark.asterisk


def test_agi_status_reaches_the_dialplan_and_the_call_goes_on(tmp_path, asterisk):
    cfg = tmp_path / "kit.ini"
    cfg.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\n" + kit_section(asterisk))
    agi = agi_command()
    cases = {
        "ok": f"{agi},--config={cfg},dialer-event,not-a-run",         # a handler that ignores foreign calls
        "unknown": f"{agi},--config={cfg},no-such-handler",            # no handler of that name
        "badcfg": f"{agi},--config={tmp_path}/missing.ini,dialer-event,1,2,answer",  # config not found
    }
    text = "[kit-agi-test]\n" + "".join(
        f"exten => {name},1,AGI({args})\n same => n,Set(DB(kitagitest/{name})=${{ASTERISK_KIT_AGI_STATUS}})\n"
        f" same => n,Hangup()\n" for name, args in cases.items())
    asterisk.add_test_dialplan("agi", text)
    with AmiClient("127.0.0.1", asterisk.ami_port, asterisk.ami_user, asterisk.ami_secret).connect() as ami:
        for name in cases:
            ami.action("Originate", Channel=f"Local/{name}@kit-agi-test", Application="Wait", Data="1",
                       Async="true")
    deadline = time.monotonic() + 60
    got = {}
    while time.monotonic() < deadline and len(got) < len(cases):
        for name in cases:
            out = asterisk.cli(f"database get kitagitest {name}")
            if "Value:" in out:
                got[name] = out.split("Value:", 1)[1].strip()
        time.sleep(0.3)
    assert got == {"ok": "OK", "unknown": "FAILED", "badcfg": "FAILED"}
    log = "".join(p.read_text() for p in (tmp_path / "log").glob("agi-*.log"))
    assert "unknown AGI handler 'no-such-handler'" in log
    assert "ignored, not a call of the autodialer" in log
