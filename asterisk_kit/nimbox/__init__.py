"""NiMbox CRM push: each call sent when it hangs up (AGI hook), a durable outbox, the CDR replicator."""
from __future__ import annotations

from ..capability import Capability, CronJob

CAPABILITY = Capability(
    name="nimbox",
    summary="NiMbox CRM push: each call sent when it hangs up (AGI hook), a durable outbox, the CDR replicator.",
    settings="asterisk_kit.nimbox.settings",
    commands="asterisk_kit.nimbox.cli",
    agi_handlers={"nimbox-call": "asterisk_kit.nimbox.hook:call"},
    doctor="asterisk_kit.nimbox:doctor_checks",
    status="asterisk_kit.nimbox.status:part",
    cron=(CronJob("nimbox sync", "NiMbox: outbox and the CDR of the last hours", schedule_key="cron_incremental"),
          CronJob("nimbox sync --full", "NiMbox: outbox and the CDR of the last days", schedule_key="cron_full")),
    dialplan=("nimbox.conf.j2",),
    services=("asterisk-kit-fastagi",),
    fastagi_key="fastagi",
)


def doctor_checks(cfg):
    """NiMbox answers (a create with an impossible destination must come back as a documented
    error, which proves URL and token without adding a call); the hangup handler is loaded."""
    from ..ami import AmiClient, AmiError
    from .client import REJECTED, TEMPORARY, send_once
    n = cfg["nimbox"]
    # [U] NiMbox has no documented "ping": probe with a destination no contact can have.
    res = send_once(n["url"], n["token"], {"initiated": "2000-01-01T00:00:00", "source": "0",
                                           "destination": "0", "duration": "0"}, max(n["timeout"], 2.0))
    if res.kind == TEMPORARY:
        yield "nimbox api", False, f"{n['url']}: {res.detail}"
    else:
        yield "nimbox api", True, f"{n['url']} answers ({res.kind}{': ' + res.detail if res.kind == REJECTED else ''})"
    if n["fastagi"]:
        import socket
        host, _, port = n["fastagi"].rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            yield "nimbox fastagi", True, f"`asterisk-kit fastagi` listens on {n['fastagi']}"
        except OSError as e:
            yield "nimbox fastagi", False, (f"nothing listens on {n['fastagi']} ({e}): start the asterisk-kit-fastagi "
                                            "service, or empty [nimbox] fastagi for classic AGI")
    try:
        with AmiClient.from_config(cfg).connect() as ami:
            ok = "Context 'nimbox-hangup'" in ami.command("dialplan show nimbox-hangup")
        yield "nimbox dialplan", ok, ("contexts nimbox-attach and nimbox-hangup loaded" if ok else
                                      "context nimbox-hangup not loaded in Asterisk: "
                                      "run `asterisk-kit install --reload`")
    except (AmiError, OSError) as e:
        yield "nimbox dialplan", False, f"cannot ask Asterisk: {e}"
