"""`asterisk-kit install`: put the kit's dialplan, init.d scripts and cron file in place.

Idempotent: every file is compared with what it should be and written (atomically) only when it
differs; the #include line is added once. `--dry-run` shows what would change and touches nothing.
The dialplan templates each configured capability declares (dialplan/*.conf.j2) are rendered into
ONE file, extensions_asterisk_kit.conf, included from extensions_custom.conf (FreePBX keeps that file
for local additions) or, on a plain Asterisk, from extensions.conf. Init.d scripts and cron lines
also come from the capabilities' descriptors, for the configured ones only.
"""
from __future__ import annotations

import difflib
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

from . import config as config_mod
from .capabilities import CORE_SERVICES, all_capabilities, configured
from .resources import shipped

DIALPLAN_FILE = "extensions_asterisk_kit.conf"
INCLUDE_LINE = f"#include {DIALPLAN_FILE}"
CRON_FILE = "asterisk-kit"


def register(sub) -> None:
    p = sub.add_parser("install", help="install dialplan, init.d scripts and cron file (idempotent)")
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    p.add_argument("--asterisk-etc", metavar="DIR", help="Asterisk config dir (default: [asterisk] etc_dir)")
    p.add_argument("--initd-dir", metavar="DIR", default="/etc/init.d", help="default: %(default)s")
    p.add_argument("--cron-dir", metavar="DIR", default="/etc/cron.d", help="default: %(default)s")
    p.add_argument("--systemd-dir", metavar="DIR",
                   help="also write the services' systemd units there (e.g. /etc/systemd/system)")
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


def _custom_config(cfg) -> Optional[Path]:
    """The config path when it is not the default one (commands must then be told where it is)."""
    if cfg.path and str(cfg.path) != config_mod.DEFAULT_PATH:
        return Path(cfg.path).resolve()
    return None


def render_dialplan(cfg) -> str:
    folder = shipped("dialplan")
    env = _jinja_env(folder)
    custom = _custom_config(cfg)
    config_arg = f"--config={custom}," if custom else ""

    def agi(handler: str, *args: str) -> str:
        # AGI(script,[--config=PATH,]handler,args...): commas separate AGI arguments.
        return f"AGI({agi_command()},{config_arg}{handler}" + "".join(f",{a}" for a in args) + ")"

    parts = [f"; {DIALPLAN_FILE}: written by `asterisk-kit install` from the kit's dialplan templates.\n"
             f"; Do not edit: change {cfg.path} and run `asterisk-kit install` again.\n"]
    schema = config_mod.schema()
    values = {name: cfg.get_section(name) for name in schema if not schema[name].multi}
    active = {c.name for c in configured(cfg)}
    for cap in all_capabilities():
        for tpl in cap.dialplan:
            if cap.name not in active:
                parts.append(f"; {tpl}: skipped, needs section [{cap.name}]\n")
                continue
            parts.append(env.get_template(tpl).render(agi=agi, cfg=cfg, **values).rstrip() + "\n")
    return "\n".join(parts)


def cron_jobs(cfg) -> List[dict]:
    """Scheduled jobs of the configured capabilities, as their descriptors declare them."""
    jobs = []
    for cap in configured(cfg):
        for job in cap.cron:
            schedule = cfg.get(cap.name, job.schedule_key) if job.schedule_key else job.schedule
            if schedule:    # a schedule key set to off/empty: no job
                jobs.append({"comment": job.comment, "schedule": schedule, "user": job.user, "args": job.args})
    if cfg.has("alerts"):   # the core's own job
        jobs.append({"comment": "e-mail alerts: failing jobs, outbox backlog, BLF without AMI (once per incident)",
                     "schedule": "*/5 * * * *", "user": "root", "args": "alerts check"})
    return jobs


def render_cron(cfg) -> str:
    env = _jinja_env(shipped("templates"))
    cmd = kit_command()
    custom = _custom_config(cfg)
    if custom:
        cmd += " --config " + shlex.quote(str(custom))
    return env.get_template("cron.d.j2").render(jobs=cron_jobs(cfg), command=cmd, config_path=cfg.path) + "\n"


def services(cfg) -> List[str]:
    """Init.d scripts to install: the core's (web) and those of the configured capabilities."""
    return list(CORE_SERVICES) + [s for c in configured(cfg) for s in c.services]


def render_initd(name: str, cfg=None) -> str:
    text = (shipped("init.d") / name).read_text(encoding="utf-8")
    text = text.replace("@ASTERISK_KIT@", kit_command())
    custom = _custom_config(cfg) if cfg is not None else None
    if custom:   # the default CONFIG= line of the script; /etc/default/NAME can still override it
        text = text.replace(f"\nCONFIG={config_mod.DEFAULT_PATH}\n", f"\nCONFIG={shlex.quote(str(custom))}\n")
    return text


def render_unit(name: str, cfg=None) -> str:
    """The systemd unit NAME.service with this installation's command and config path."""
    text = (shipped("init.d") / f"{name}.service").read_text(encoding="utf-8")
    text = text.replace("ExecStart=/usr/local/bin/asterisk-kit ", f"ExecStart={kit_command()} ")
    custom = _custom_config(cfg) if cfg is not None else None
    if custom:
        text = text.replace(f" --config {config_mod.DEFAULT_PATH} ", f" --config {shlex.quote(str(custom))} ")
    return text


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
        if any(have.strip() == line for have in text.splitlines()):
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


def plan_install(cfg, etc: Path, initd_dir: Optional[Path], cron_dir: Optional[Path], dry_run: bool,
                 systemd_dir: Optional[Path] = None) -> Plan:
    plan = Plan(dry_run)
    if not etc.is_dir():
        raise FileNotFoundError(f"Asterisk config dir {etc} does not exist (set [asterisk] etc_dir or --asterisk-etc)")
    target = include_target(etc)
    plan.file(etc / DIALPLAN_FILE, render_dialplan(cfg), 0o644)
    plan.include(target, INCLUDE_LINE)
    if initd_dir is not None:
        for name in services(cfg):
            plan.file(initd_dir / name, render_initd(name, cfg), 0o755)
    if systemd_dir is not None:
        for name in services(cfg):
            plan.file(systemd_dir / f"{name}.service", render_unit(name, cfg), 0o644)
    if cron_dir is not None:
        plan.file(cron_dir / CRON_FILE, render_cron(cfg), 0o644)
    return plan


def run(ctx) -> int:
    cfg = ctx.cfg
    args = ctx.args
    etc = Path(args.asterisk_etc) if args.asterisk_etc else Path(cfg["asterisk"]["etc_dir"])
    try:
        plan = plan_install(cfg, etc, None if args.no_initd else Path(args.initd_dir),
                            None if args.no_cron else Path(args.cron_dir), args.dry_run,
                            Path(args.systemd_dir) if args.systemd_dir else None)
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
    if not args.dry_run:
        print(enable_hint(cfg, None if args.no_initd else Path(args.initd_dir), args.systemd_dir))
    return 0


def enable_hint(cfg, initd_dir: Optional[Path], systemd_dir: Optional[str]) -> str:
    """How to have the services started at boot (install never enables or starts them itself)."""
    names = " ".join(services(cfg))
    if systemd_dir:
        return f"services: enable and start them with `systemctl daemon-reload && systemctl enable --now {names}`"
    if initd_dir is None:
        return "services: no init.d scripts installed (--no-initd)"
    starts = "; ".join(f"{initd_dir / n} start" for n in services(cfg))
    return (f"services: enable them at boot with `for s in {names}; do update-rc.d $s defaults; done` "
            f"(on systemd: `systemctl enable {names}`), then start them: {starts}")
