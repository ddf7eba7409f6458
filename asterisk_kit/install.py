"""`asterisk-kit install`: put the kit's dialplan, init.d scripts and cron file in place.

Idempotent: every file is compared with what it should be and written (atomically) only when it
differs; the #include line is added once. `--dry-run` shows what would change and touches nothing.
The dialplan templates in dialplan/*.conf.j2 are rendered into ONE file, extensions_asterisk_kit.conf,
included from extensions_custom.conf (FreePBX keeps that file for local additions) or, on a plain
Asterisk, from extensions.conf.
"""
from __future__ import annotations

import difflib
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

from . import config as config_mod
from .resources import shipped

DIALPLAN_FILE = "extensions_asterisk_kit.conf"
INCLUDE_LINE = f"#include {DIALPLAN_FILE}"
CRON_FILE = "asterisk-kit"
_REQUIRES = re.compile(r"\{#-?\s*requires:\s*([a-z_ ,]+?)\s*-?#\}")


def register(sub) -> None:
    p = sub.add_parser("install", help="install dialplan, init.d scripts and cron file (idempotent)")
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    p.add_argument("--asterisk-etc", metavar="DIR", help="Asterisk config dir (default: [asterisk] etc_dir)")
    p.add_argument("--initd-dir", metavar="DIR", default="/etc/init.d", help="default: %(default)s")
    p.add_argument("--cron-dir", metavar="DIR", default="/etc/cron.d", help="default: %(default)s")
    p.add_argument("--no-initd", action="store_true", help="skip the init.d scripts")
    p.add_argument("--no-cron", action="store_true", help="skip the cron file")
    p.add_argument("--reload", action="store_true", help="ask Asterisk (through AMI) to reload the dialplan")
    p.set_defaults(func=run, needs_root=True)


# ---- rendering ---------------------------------------------------------------------------------

def kit_command() -> str:
    """Absolute path of the asterisk-kit command of this installation (venv or system)."""
    return str(Path(sys.executable).parent / "asterisk-kit")


def agi_command() -> str:
    return str(Path(sys.executable).parent / "asterisk-kit-agi")


def _jinja_env(folder: Path):
    import jinja2
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)


def render_dialplan(cfg) -> str:
    folder = shipped("dialplan")
    env = _jinja_env(folder)
    config_arg = ""
    if cfg.path and str(cfg.path) != config_mod.DEFAULT_PATH:
        config_arg = f"--config={Path(cfg.path).resolve()},"

    def agi(handler: str, *args: str) -> str:
        # AGI(script,[--config=PATH,]handler,args...): commas separate AGI arguments.
        return f"AGI({agi_command()},{config_arg}{handler}" + "".join(f",{a}" for a in args) + ")"

    parts = [f"; {DIALPLAN_FILE}: written by `asterisk-kit install` from the kit's dialplan templates.\n"
             f"; Do not edit: change {cfg.path} and run `asterisk-kit install` again.\n"]
    for tpl in sorted(folder.glob("*.conf.j2")):
        source = tpl.read_text(encoding="utf-8")
        m = _REQUIRES.search(source)
        needs = [s.strip() for s in m.group(1).split(",")] if m else []
        if any(not cfg.has(n) for n in needs):
            parts.append(f"; {tpl.name}: skipped, needs section(s) {', '.join('[' + n + ']' for n in needs)}\n")
            continue
        values = {name: cfg.get_section(name) for name in config_mod.SCHEMA if not config_mod.SCHEMA[name].multi}
        parts.append(env.get_template(tpl.name).render(agi=agi, cfg=cfg, **values).rstrip() + "\n")
    return "\n".join(parts)


def cron_jobs(cfg) -> List[dict]:
    """Scheduled jobs for the configured capabilities (each capability adds its line here)."""
    jobs = []
    if cfg.has("dialer"):
        jobs.append({"comment": "autodialer: start today's run when its time has come",
                     "schedule": "* * * * *", "user": "root", "args": "dialer tick"})
    if cfg.instances("beeline"):
        jobs.append({"comment": "Beeline recordings -> customers' FTP/SFTP (each customer locked on its own)",
                     "schedule": "*/15 * * * *", "user": "root", "args": "beeline sync"})
    if cfg.has("comagic"):  # hourly: loads yesterday once it is over, and resumes a run that stopped early
        jobs.append({"comment": "CoMagic calls -> warehouse, day by day up to yesterday",
                     "schedule": "40 * * * *", "user": "root", "args": "comagic export"})
    if cfg.has("nimbox"):
        n = cfg["nimbox"]
        if n["cron_incremental"]:
            jobs.append({"comment": "NiMbox: outbox and the CDR of the last hours", "schedule": n["cron_incremental"],
                         "user": "root", "args": "nimbox sync"})
        if n["cron_full"]:
            jobs.append({"comment": "NiMbox: outbox and the CDR of the last days", "schedule": n["cron_full"],
                         "user": "root", "args": "nimbox sync --full"})
    return jobs


def render_cron(cfg) -> str:
    env = _jinja_env(shipped("templates"))
    cmd = kit_command()
    if cfg.path and str(cfg.path) != config_mod.DEFAULT_PATH:
        cmd += " --config " + shlex.quote(str(Path(cfg.path).resolve()))
    return env.get_template("cron.d.j2").render(jobs=cron_jobs(cfg), command=cmd, config_path=cfg.path) + "\n"


def render_initd(name: str) -> str:
    text = (shipped("init.d") / name).read_text(encoding="utf-8")
    return text.replace("@ASTERISK_KIT@", kit_command())


# ---- applying ----------------------------------------------------------------------------------

class Plan:
    def __init__(self, dry_run: bool):
        self.dry_run = dry_run
        self.changes: List[str] = []

    def file(self, path: Path, content: str, mode: int) -> None:
        old: Optional[str] = None
        if path.exists():
            old = path.read_text(encoding="utf-8", errors="replace")
        if old == content:
            if (path.stat().st_mode & 0o7777) != mode:
                self._do(f"chmod {mode:o} {path}", lambda: os.chmod(path, mode))
            return
        verb = "update" if old is not None else "create"
        if self.dry_run and old is not None:
            diff = "".join(difflib.unified_diff(old.splitlines(True), content.splitlines(True),
                                                str(path), str(path) + " (new)", n=1))
            self.changes.append(f"would {verb} {path}:\n{diff}")
            return
        self._do(f"{verb} {path}", lambda: atomic_write(path, content, mode))

    def include(self, target: Path, line: str) -> None:
        text = target.read_text(encoding="utf-8", errors="replace")
        if any(l.strip() == line for l in text.splitlines()):
            return
        new = text + ("" if text.endswith("\n") or not text else "\n") + line + "\n"
        self._do(f"add '{line}' to {target}", lambda: atomic_write(target, new, target.stat().st_mode & 0o7777))

    def _do(self, what: str, action) -> None:
        if self.dry_run:
            self.changes.append("would " + what)
        else:
            action()
            self.changes.append(what)


def atomic_write(path: Path, content: str, mode: int) -> None:
    """Write next to PATH and rename over it: Asterisk or cron never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if path.exists():
            st = path.stat()
            try:
                os.chown(tmp, st.st_uid, st.st_gid)  # keep e.g. FreePBX's asterisk:asterisk ownership
            except PermissionError:
                pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def include_target(etc: Path) -> Path:
    for name in ("extensions_custom.conf", "extensions.conf"):
        if (etc / name).is_file():
            return etc / name
    raise FileNotFoundError(f"neither extensions_custom.conf nor extensions.conf in {etc}: "
                            f"is this the Asterisk config dir? (use --asterisk-etc)")


def plan_install(cfg, etc: Path, initd_dir: Optional[Path], cron_dir: Optional[Path], dry_run: bool) -> Plan:
    plan = Plan(dry_run)
    if not etc.is_dir():
        raise FileNotFoundError(f"Asterisk config dir {etc} does not exist (set [asterisk] etc_dir or --asterisk-etc)")
    target = include_target(etc)
    plan.file(etc / DIALPLAN_FILE, render_dialplan(cfg), 0o644)
    plan.include(target, INCLUDE_LINE)
    if initd_dir is not None:
        for script in sorted(shipped("init.d").iterdir()):
            if script.is_file() and not script.name.startswith(("_", ".")) and script.suffix not in (".py", ".pyc", ".service"):
                plan.file(initd_dir / script.name, render_initd(script.name), 0o755)
    if cron_dir is not None:
        plan.file(cron_dir / CRON_FILE, render_cron(cfg), 0o644)
    return plan


def run(ctx) -> int:
    cfg = ctx.cfg
    args = ctx.args
    etc = Path(args.asterisk_etc) if args.asterisk_etc else Path(cfg["asterisk"]["etc_dir"])
    try:
        plan = plan_install(cfg, etc, None if args.no_initd else Path(args.initd_dir),
                            None if args.no_cron else Path(args.cron_dir), args.dry_run)
    except (FileNotFoundError, PermissionError) as e:
        print(f"asterisk-kit install: {e}", file=sys.stderr)
        return 1
    for line in plan.changes:
        print(line)
    if not plan.changes:
        print("nothing to change: everything is installed and up to date")
    if args.reload and plan.changes and not args.dry_run:
        from .ami import AmiClient, AmiError
        try:
            with AmiClient.from_config(cfg) as ami:
                out = ami.command("dialplan reload", check=True)
            print("dialplan reloaded: " + " ".join(out.split())[:200])
        except AmiError as e:
            print(f"could not reload the dialplan through AMI: {e}; run `asterisk -rx 'dialplan reload'`",
                  file=sys.stderr)
            return 1
    elif plan.changes and not args.dry_run:
        print("run `asterisk -rx 'dialplan reload'` (or `fwconsole reload` on FreePBX) to load the dialplan")
    return 0
