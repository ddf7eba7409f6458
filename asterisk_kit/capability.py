"""What a capability declares about itself, in ONE place: its package's `CAPABILITY`.

The core (config loader, cli, AGI runner, FastAGI, web app, doctor, install) reads these
descriptors from the list in capabilities.py and never names a capability itself. Everything
here is a string or a tuple of strings: a descriptor is imported on every AGI call, so module
paths are given as "package.module" / "package.module:function" and imported only when used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Tuple


@dataclass(frozen=True)
class CronJob:
    """One line of /etc/cron.d/asterisk-kit, written when the capability is configured."""
    args: str                       # asterisk-kit arguments, e.g. "beeline sync"
    comment: str
    schedule: str = ""              # a cron schedule, or
    schedule_key: str = ""          # the key of the capability's section holding it (empty: no job)
    user: str = "root"              # jobs switch to [asterisk] run_user themselves


@dataclass(frozen=True)
class Capability:
    name: str                       # package name = its config section (or [name:INSTANCE] kind)
    summary: str                    # one line: what it does (config example, docs)
    settings: str = ""              # module holding SECTIONS: Dict[str, Section]
    commands: str = ""              # module holding register(subparsers) for `asterisk-kit NAME ...`
    agi_handlers: Mapping[str, str] = field(default_factory=dict)   # dialplan name -> "module:function"
    pages: str = ""                 # "module:function" adding its web pages: function(web)
    doctor: str = ""                # "module:function" yielding (check name, ok, detail) for `doctor`
    status: str = ""                # "module:function(cfg, now)" -> {lines, problems, ...} for `status`
    cron: Tuple[CronJob, ...] = ()
    dialplan: Tuple[str, ...] = ()  # templates in dialplan/ rendered by `install`
    services: Tuple[str, ...] = ()  # init.d scripts in init.d/ (each with a NAME.service systemd unit)
    ami: bool = False               # talks to AMI: its section gets optional ami_user / ami_secret
    fastagi_key: str = ""           # key of its section naming the HOST:PORT `asterisk-kit fastagi` serves
