"""A private, real Asterisk 22 for tests and the demo (see scripts/asterisk-root.sh).

The binaries come from a cached Debian sid root; they run on the host with sid's dynamic loader, so
AGI scripts Asterisk spawns run with the host's Python and the project's venv. Everything else is
private to one work folder: config (-C), spool, run, log and lib dirs, an AMI port on 127.0.0.1.
Like the Asterisk project's own testsuite: wait for `core waitfullybooted`, stop with an escalating
shutdown.

The etc dir is laid out like FreePBX: extensions.conf includes extensions_custom.conf, which is
where `asterisk-kit install` adds its own #include.
"""
from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional

REPO = Path(__file__).resolve().parents[1]

NOLOAD = [
    # Hardware/legacy channel drivers and modules that bind fixed ports or want hardware.
    "chan_dahdi.so", "chan_iax2.so", "chan_mgcp.so", "chan_skinny.so", "chan_unistim.so",
    "chan_motif.so", "res_xmpp.so", "chan_ooh323.so", "pbx_dundi.so", "chan_console.so",
    "chan_alsa.so", "res_corosync.so", "res_snmp.so", "cdr_radius.so", "cel_radius.so",
    "res_config_ldap.so", "res_hep.so", "res_hep_pjsip.so", "res_hep_rtcp.so", "chan_oss.so",
    "res_pjsip_phoneprov_provider.so", "res_phoneprov.so", "res_smdi.so", "app_voicemail_imap.so",
    "app_voicemail_odbc.so", "res_odbc.so", "res_config_odbc.so", "cdr_odbc.so", "cel_odbc.so",
    "cdr_adaptive_odbc.so", "cdr_pgsql.so", "cel_pgsql.so", "res_config_pgsql.so", "cdr_tds.so",
    "cel_tds.so", "res_calendar.so", "res_calendar_caldav.so", "res_calendar_ews.so",
    "res_calendar_exchange.so", "res_calendar_icalendar.so", "chan_rtp.so", "res_aeap.so",
    "res_speech_aeap.so", "res_prometheus.so", "cdr_beanstalkd.so", "cel_beanstalkd.so",
    "pbx_lua.so", "func_odbc.so", "res_odbc_transaction.so",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def asterisk_root() -> Path:
    """The cached sid root with Asterisk, built on first use by scripts/asterisk-root.sh."""
    env_root = os.environ.get("ASTERISK_KIT_ASTERISK_ROOT")
    if env_root and (Path(env_root) / "usr/sbin/asterisk").exists():
        return Path(env_root)
    out = subprocess.run(["bash", str(REPO / "scripts/asterisk-root.sh")], check=True,
                         stdout=subprocess.PIPE, text=True, timeout=1800)
    return Path(out.stdout.strip().splitlines()[-1])


class Asterisk:
    def __init__(self, workdir: Path, root: Optional[Path] = None, ami_port: Optional[int] = None,
                 env: Optional[Dict[str, str]] = None):
        self.workdir = Path(workdir)
        self.root = Path(root) if root else asterisk_root()
        self.etc_dir = self.workdir / "etc"
        self.spool_dir = self.workdir / "spool"
        self.log_dir = self.workdir / "log"
        self.run_dir = self.workdir / "run"
        self.lib_dir = self.workdir / "lib"
        self.agi_dir = self.workdir / "agi-bin"
        self.conf = self.etc_dir / "asterisk.conf"
        self.console_log = self.log_dir / "console.out"
        self.ami_port = ami_port or free_port()
        self.ami_user = "kit"
        self.ami_secret = secrets.token_hex(8)
        self.extra_env = dict(env or {})
        self.proc: Optional[subprocess.Popen] = None

    # -- command lines --
    def _loader(self):
        return [str(self.root / "lib64/ld-linux-x86-64.so.2"), "--library-path",
                f"{self.root}/usr/lib/x86_64-linux-gnu:{self.root}/lib/x86_64-linux-gnu"]

    def binary(self):
        return self._loader() + [str(self.root / "usr/sbin/asterisk"), "-C", str(self.conf)]

    def cli_command(self) -> str:
        """A shell command prefix that sends one CLI command (for [asterisk] cli_command)."""
        return " ".join(self.binary() + ["-rx"])

    # -- files --
    def write_etc(self, name: str, text: str) -> Path:
        p = self.etc_dir / name
        p.write_text(text)
        return p

    def setup(self) -> "Asterisk":
        for d in (self.etc_dir, self.spool_dir / "outgoing", self.spool_dir / "tmp", self.log_dir,
                  self.run_dir, self.lib_dir, self.agi_dir):
            d.mkdir(parents=True, exist_ok=True)
        r = self.root
        self.write_etc("asterisk.conf", f"""[directories]
astetcdir => {self.etc_dir}
astmoddir => {r}/usr/lib/x86_64-linux-gnu/asterisk/modules
astvarlibdir => {self.lib_dir}
astdbdir => {self.lib_dir}
astkeydir => {self.lib_dir}
astdatadir => {r}/usr/share/asterisk
astagidir => {self.agi_dir}
astspooldir => {self.spool_dir}
astrundir => {self.run_dir}
astlogdir => {self.log_dir}
astsbindir => {r}/usr/sbin

[options]
verbose = 3
nocolor = yes
""")
        self.write_etc("modules.conf", "[modules]\nautoload = yes\n" +
                       "".join(f"noload => {m}\n" for m in NOLOAD))
        self.write_etc("logger.conf", "[general]\n[logfiles]\nmessages.log => notice,warning,error,verbose(3)\n")
        self.write_etc("manager.conf", f"""[general]
enabled = yes
port = {self.ami_port}
bindaddr = 127.0.0.1

[{self.ami_user}]
secret = {self.ami_secret}
read = all
write = all
""")
        for empty in ("pjsip.conf", "extensions_custom.conf", "cdr.conf", "cel.conf", "http.conf",
                      "rtp.conf", "musiconhold.conf", "features.conf", "indications.conf", "queues.conf",
                      "confbridge.conf"):
            if not (self.etc_dir / empty).exists():
                self.write_etc(empty, "")
        self.write_etc("cdr.conf", "[general]\nenable = yes\n")
        if not (self.etc_dir / "extensions.conf").exists():
            self.write_etc("extensions.conf", """[general]
static = yes
writeprotect = yes
clearglobalvars = no

[globals]

; FreePBX-like: site-specific dialplan goes to extensions_custom.conf
#include extensions_custom.conf
""")
        return self

    # -- life cycle --
    def start(self, timeout: float = 90) -> "Asterisk":
        if not self.conf.exists():
            self.setup()
        env = dict(os.environ)
        env.update(self.extra_env)
        self._out = open(self.console_log, "ab")
        self.proc = subprocess.Popen(self.binary() + ["-f", "-n"], stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"asterisk exited with {self.proc.returncode}; see {self.console_log}:\n"
                                   + self.console_log.read_text(errors="replace")[-3000:])
            r = subprocess.run(self.binary() + ["-rx", "core waitfullybooted"], capture_output=True, text=True,
                               timeout=30)
            if r.returncode == 0 and "fully booted" in r.stdout:
                self._wait_ami(deadline)
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"asterisk did not boot within {timeout}s; see {self.console_log}")

    def _wait_ami(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ami_port), timeout=2) as s:
                    if s.recv(100).startswith(b"Asterisk Call Manager"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("AMI did not come up")

    def cli(self, command: str, timeout: float = 30) -> str:
        r = subprocess.run(self.binary() + ["-rx", command], capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed: {r.stderr or r.stdout}")
        return r.stdout

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.proc:
            return
        steps = [lambda: self._try_cli("core stop gracefully"), lambda: self._try_cli("core stop now"),
                 lambda: self.proc.send_signal(signal.SIGTERM), lambda: self.proc.kill()]
        for step in steps:
            if self.proc.poll() is not None:
                break
            try:
                step()
            except Exception:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                continue
        self._out.close()
        self.proc = None

    def _try_cli(self, command: str) -> None:
        subprocess.run(self.binary() + ["-rx", command], capture_output=True, timeout=5)

    def add_test_dialplan(self, name: str, text: str, reload: bool = True) -> Path:
        """Test-only contexts (e.g. a fake callee) in extensions_test_NAME.conf, included once."""
        p = self.write_etc(f"extensions_test_{name}.conf", text)
        ext = self.etc_dir / "extensions.conf"
        line = f"#include extensions_test_{name}.conf"
        if line not in ext.read_text().splitlines():
            with open(ext, "a") as f:
                f.write(line + "\n")
        if reload and self.running():
            self.cli("dialplan reload")
        return p

    def messages(self) -> str:
        p = self.log_dir / "messages.log"
        return p.read_text(errors="replace") if p.exists() else ""


def main(argv=None) -> int:
    """`python -m testbed.asterisk start DIR` / `stop DIR` / `cli DIR "COMMAND"`: used by
    scripts/demo.sh (and by hand, e.g. `cli demo/asterisk "devstate change Custom:101 INUSE"`)."""
    import argparse
    import json
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=["start", "stop", "cli"])
    ap.add_argument("workdir")
    ap.add_argument("command", nargs="?", help="with cli: the Asterisk CLI command to run")
    args = ap.parse_args(argv)
    work = Path(args.workdir).resolve()
    info_file = work / "testbed.json"
    if args.action == "stop":
        if info_file.exists():
            info = json.loads(info_file.read_text())
            try:
                os.kill(info["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
        return 0
    if args.action == "cli":
        info = json.loads(info_file.read_text())
        return subprocess.run(info["cli_command"] + " " + shlex.quote(args.command or "core show version"),
                              shell=True).returncode
    a = Asterisk(work)
    if info_file.exists():  # keep the AMI port and secret stable across demo restarts
        info = json.loads(info_file.read_text())
        a.ami_port, a.ami_secret = info["ami_port"], info["ami_secret"]
    a.setup()
    a.start()
    info_file.write_text(json.dumps({"pid": a.proc.pid, "ami_port": a.ami_port, "ami_user": a.ami_user,
                                     "ami_secret": a.ami_secret, "etc_dir": str(a.etc_dir),
                                     "spool_dir": str(a.spool_dir), "cli_command": a.cli_command()}))
    print(json.dumps({"pid": a.proc.pid, "ami_port": a.ami_port}))
    a.proc = None  # leave it running
    return 0


if __name__ == "__main__":
    sys.exit(main())


def kit_section(a: "Asterisk") -> str:
    """The [asterisk] section of a kit config pointing at this testbed."""
    return f"""[asterisk]
ami_host = 127.0.0.1
ami_port = {a.ami_port}
ami_user = {a.ami_user}
ami_secret = {a.ami_secret}
spool_dir = {a.spool_dir}
etc_dir = {a.etc_dir}
run_user =
"""
