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
from .logsetup import LogDirError

COMMAND_MODULES = (
    "asterisk_kit.configcmd",
    "asterisk_kit.install",
    "asterisk_kit.doctor",
    "asterisk_kit.web.cli",
    "asterisk_kit.fastagi",
    "asterisk_kit.status.cli",
)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
EXIT_BROKEN_PIPE = 141   # 128 + SIGPIPE, what a shell reports for a reader that went away
# Files the kit creates (store, logs, locks, temp recordings, call files) are not for other users.
UMASK = 0o027


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
    _name_commands(sub)
    return p


def _name_commands(sub, prefix: str = "") -> None:
    """Give every (sub)command its name, e.g. "beeline sync", as default `command_name`."""
    for name, parser in sub.choices.items():
        full = f"{prefix}{name}"
        parser.set_defaults(command_name=full)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _name_commands(action, full + " ")


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
    os.umask(UMASK)
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Ctx(args)
    recorder = None
    try:
        if not getattr(args, "needs_root", False):
            drop_privileges(ctx.cfg)
        from .jobruns import Recorder, recorded
        if getattr(args, "command_name", "") in recorded():
            recorder = Recorder(ctx.cfg, args.command_name)
            recorder.start()
        rc = int(args.func(ctx) or 0)
        sys.stdout.flush()       # a reader gone away (`| head`) shows here, inside the guard
        if recorder:
            recorder.end("ok" if rc == 0 else "locked" if rc == EXIT_LOCKED else "failed")
        return rc
    except ConfigError as e:
        print("configuration error:", file=sys.stderr)
        for line in e.problems:
            print("  " + line, file=sys.stderr)
        return EXIT_CONFIG
    except LockBusy as e:
        print(f"asterisk-kit: {e}", file=sys.stderr)
        logging.getLogger("asterisk_kit").warning("%s", e)
        if recorder:
            recorder.end("locked")
        return EXIT_LOCKED
    except LogDirError as e:
        _fail_loudly(ctx, str(e))
        if recorder:
            recorder.end("failed", str(e))
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        if recorder:
            recorder.end("failed", "interrupted")
        return 130
    except BrokenPipeError as e:
        if not _stdout_gone():          # a socket's EPIPE (AMI, an API): a real failure
            _unexpected(ctx, e)
            if recorder:
                recorder.end("failed", f"{type(e).__name__}: {e}")
            return EXIT_FAILED
        _stdout_to_devnull()
        if recorder:
            recorder.end("failed", "the reader of its output went away before the end")
        return EXIT_BROKEN_PIPE
    except EOFError:
        print("asterisk-kit: no input: end of file where an answer was expected", file=sys.stderr)
        return EXIT_FAILED
    except Exception as e:
        _unexpected(ctx, e)
        if recorder:
            recorder.end("failed", f"{type(e).__name__}: {e}")
        return EXIT_FAILED


def _stdout_gone() -> bool:
    """Has the reader of stdout gone away (`| head` done)? A pipe's write end then polls POLLERR."""
    import select
    try:
        p = select.poll()
        p.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in p.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _stdout_to_devnull() -> None:
    """After EPIPE, Python would complain again flushing stdout at exit."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass


def _fail_loudly(ctx: Ctx, message: str) -> None:
    """A job that cannot log says so on stderr and in syslog (cron drops stderr)."""
    from .logsetup import to_syslog
    job = getattr(ctx.args, "command_name", "kit").split()[0]
    print(f"asterisk-kit: {message}", file=sys.stderr)
    try:
        to_syslog(ctx.cfg, job, message)
    except (OSError, ConfigError):
        pass


def _unexpected(ctx: Ctx, e: Exception) -> None:
    """One line on the terminal; the traceback goes to the job's log (and stderr with -v)."""
    from . import logsetup
    files = logsetup.current_files()
    if not files:
        try:
            logsetup.setup(ctx.cfg, "kit", to_stderr=False)
            files = logsetup.current_files()
        except Exception:
            files = []
    record = logging.getLogger("asterisk_kit").makeRecord(
        "asterisk_kit", logging.ERROR, __file__, 0, "unexpected error in `%s`",
        (getattr(ctx.args, "command_name", "?"),), (type(e), e, e.__traceback__))
    for h in logging.getLogger().handlers:     # the traceback to the files only, not the terminal
        if isinstance(h, logsetup.DailyFileHandler):
            h.handle(record)
    where = f"; details in {files[0]}" if files else ""
    print(f"asterisk-kit: unexpected error: {type(e).__name__}: {e}{where}", file=sys.stderr)
    if ctx.args.verbose:
        import traceback
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
