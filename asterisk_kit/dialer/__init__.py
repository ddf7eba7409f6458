"""Autodialer ("avtoobzvon"): phone list and weekly schedule, paced call files, results from Asterisk."""
from __future__ import annotations

from ..capability import Capability, CronJob

CAPABILITY = Capability(
    name="dialer",
    summary="Autodialer: phone list and weekly schedule, paced call files, results from Asterisk.",
    settings="asterisk_kit.dialer.settings",
    commands="asterisk_kit.dialer.cli",
    agi_handlers={"dialer-event": "asterisk_kit.dialer.agi:event"},
    pages="asterisk_kit.dialer.web:register",
    doctor="asterisk_kit.dialer:doctor_checks",
    cron=(CronJob("dialer tick", "autodialer: start today's run when its time has come", schedule="* * * * *"),),
    dialplan=("avtoobzvon.conf.j2",),
    ami=True,
)


def doctor_checks(cfg):
    """The call file templates render to valid call files; Asterisk has the kit's contexts loaded."""
    from ..ami import AmiClient, AmiError
    from .callfile import CallFileError, Renderer
    try:
        Renderer(cfg).render(1, "89990000000", "1")
        Renderer(cfg).render(1, "89990000000")
        yield "dialer templates", True, "plain and IVR call files render and pass the line check"
    except (CallFileError, OSError, Exception) as e:  # jinja errors too
        yield "dialer templates", False, f"{type(e).__name__}: {e}"
    try:
        with AmiClient.from_config(cfg).connect() as ami:
            missing = [c for c in ("avtoobzvon", "avtoobzvon-ivr")
                       if f"Context '{c}'" not in ami.command(f"dialplan show {c}")]
        if missing:
            yield "dialer dialplan", False, (f"context(s) {', '.join(missing)} not loaded in Asterisk: run "
                                             "`asterisk-kit install --reload`")
        else:
            yield "dialer dialplan", True, "contexts avtoobzvon and avtoobzvon-ivr loaded"
    except (AmiError, OSError) as e:
        yield "dialer dialplan", False, f"cannot ask Asterisk: {e}"
