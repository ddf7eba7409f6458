"""`asterisk-kit` command line: global options, then one sub-command group per module.

The core's modules are in COMMAND_MODULES, each capability's comes from its descriptor
(`commands`). Each has `register(subparsers)` adding its commands, each command
setting `func(ctx) -> int`. Modules must stay light at import time (pandas, google-cloud and other
heavy libraries are imported inside the functions that need them).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import List, Optional

from . import __version__
from .config import Config, ConfigError, load
from .lock import EXIT_LOCKED, JobLock, LockBusy

COMMAND_MODULES = (
    "asterisk_kit.configcmd",
    "asterisk_kit.install",
    "asterisk_kit.doctor",
    "asterisk_kit.web.cli",
    "asterisk_kit.fastagi",
)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


class Ctx:
    """What a command gets: parsed args, the config (loaded on first use) and helpers."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self._cfg: Optional[Config] = None

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            self._cfg = load(self.args.config)
        return self._cfg

    def logger(self, job: str) -> logging.Logger:
        from .logsetup import setup
        return setup(self.cfg, job, verbose=self.args.verbose)

    def lock(self, name: str) -> JobLock:
        return JobLock(self.cfg.data_dir, name).acquire()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asterisk-kit", description="Integrations for an Asterisk / FreePBX PBX.")
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: $ASTERISK_KIT_CONFIG or /etc/asterisk-kit/asterisk-kit.ini)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging, also to stderr")
    p.add_argument("--version", action="version", version=f"asterisk-kit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    from .capabilities import all_capabilities
    modules = list(COMMAND_MODULES) + [c.commands for c in all_capabilities() if c.commands]
    for name in modules:
        importlib.import_module(name).register(sub)
    return p


def drop_privileges(cfg) -> None:
    """Jobs started as root (cron, an admin's shell) run as [asterisk] run_user, so every file they
    create (store, logs, locks, call files) belongs to the user Asterisk, the AGI and the web app
    run as. Only install, config and user management keep root."""
    user = cfg["asterisk"]["run_user"]
    if os.geteuid() != 0 or not user or user == "root":
        return
    import pwd
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        logging.getLogger("asterisk_kit").warning("[asterisk] run_user %r does not exist; running as root", user)
        return
    os.setgid(pw.pw_gid)
    os.initgroups(user, pw.pw_gid)
    os.setuid(pw.pw_uid)
    os.environ["HOME"] = pw.pw_dir


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Ctx(args)
    try:
        if not getattr(args, "needs_root", False):
            drop_privileges(ctx.cfg)
        return int(args.func(ctx) or 0)
    except ConfigError as e:
        print("configuration error:", file=sys.stderr)
        for line in e.problems:
            print("  " + line, file=sys.stderr)
        return EXIT_CONFIG
    except LockBusy as e:
        print(f"asterisk-kit: {e}", file=sys.stderr)
        logging.getLogger("asterisk_kit").warning("%s", e)
        return EXIT_LOCKED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
