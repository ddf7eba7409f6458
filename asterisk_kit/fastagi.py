"""`asterisk-kit fastagi`: the kit's AGI handlers served over FastAGI on 127.0.0.1, for busy PBXs
where starting a Python process per call costs too much. The dialplan then says
AGI(agi://127.0.0.1:4573/HANDLER,ARG...) instead of running asterisk-kit-agi.

Written here rather than taken from panoramisk, whose FastAGI spins at 100 % CPU when a client
disconnects before the blank line ending the AGI headers: here a connection that ends (or stalls
HEADER_TIMEOUT seconds) before its headers are complete is simply closed. One thread per
connection; handlers are the same functions as for classic AGI (the descriptors' agi_handlers).
"""
from __future__ import annotations

import logging
import socketserver
import sys
from typing import Dict, List, Optional

HEADER_TIMEOUT = 5.0       # seconds for Asterisk to send the AGI environment
COMMAND_TIMEOUT = 10.0     # seconds for Asterisk to answer one AGI command
MAX_HEADERS = 300


class AgiHangup(Exception):
    pass


class FastAgi:
    """The part of pyst2's AGI object the kit's handlers and core use, over a FastAGI socket."""

    def __init__(self, rfile, wfile, env: Dict[str, str]):
        self.rfile, self.wfile, self.env = rfile, wfile, env

    def _command(self, line: str) -> str:
        if "\n" in line or "\r" in line:
            raise ValueError("AGI command with a line break")
        self.wfile.write(line.encode() + b"\n")
        self.wfile.flush()
        answer = self.rfile.readline(8192).decode(errors="replace").strip()
        if not answer or answer.startswith(("511", "HANGUP")):
            raise AgiHangup(answer or "connection closed")
        if not answer.startswith("200"):
            raise RuntimeError(f"AGI {line.split()[0]} refused: {answer}")
        return answer

    @staticmethod
    def _quote(value: str) -> str:
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'

    def verbose(self, message: str, level: int = 1) -> None:
        self._command(f"VERBOSE {self._quote(message)} {int(level)}")

    def set_variable(self, name: str, value: str) -> None:
        self._command(f"SET VARIABLE {name} {self._quote(value)}")

    def get_variable(self, name: str) -> str:
        answer = self._command(f"GET VARIABLE {name}")
        return answer.partition("(")[2].rpartition(")")[0] if "(" in answer else ""


def read_env(rfile) -> Optional[Dict[str, str]]:
    """The AGI environment up to its blank line; None when the client left (or sent garbage) first."""
    env: Dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = rfile.readline(8192)
        if not line:                 # EOF before the blank line: the client went away; never loop on it
            return None
        text = line.decode(errors="replace").rstrip("\r\n")
        if not text:
            return env
        key, sep, value = text.partition(":")
        if sep:
            env[key.strip()] = value.strip()
    return None


def handler_args(env: Dict[str, str]):
    name = env.get("agi_network_script", "").strip("/")
    args: List[str] = []
    i = 1
    while f"agi_arg_{i}" in env:
        args.append(env[f"agi_arg_{i}"])
        i += 1
    return name, args


def make_server(cfg, host: str, port: int, log: logging.Logger) -> socketserver.ThreadingTCPServer:
    from .agi import run_handler

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            self.request.settimeout(HEADER_TIMEOUT)
            try:
                env = read_env(self.rfile)
            except OSError:          # stalled: timeout
                return
            if env is None:
                log.debug("fastagi: %s left before the AGI headers ended", self.client_address)
                return
            self.request.settimeout(COMMAND_TIMEOUT)
            name, args = handler_args(env)
            agi = FastAgi(self.rfile, self.wfile, env)
            run_handler(agi, name, args, lambda: (cfg, log))

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    return Server((host, port), Handler)


def configured_address(cfg) -> str:
    """HOST:PORT a configured capability's dialplan sends FastAGI requests to (its `fastagi_key`)."""
    from .capabilities import configured
    for cap in configured(cfg):
        if cap.fastagi_key and cfg.get(cap.name, cap.fastagi_key):
            return str(cfg.get(cap.name, cap.fastagi_key))
    return ""


def register(sub) -> None:
    p = sub.add_parser("fastagi", help="serve the kit's AGI handlers over FastAGI (agi://HOST:PORT/HANDLER)")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="default: the address a configured capability's dialplan uses (e.g. [nimbox] fastagi), "
                        "else 127.0.0.1:4573 (Asterisk's FastAGI port)")
    p.set_defaults(func=run)


def run(ctx) -> int:
    listen = ctx.args.listen or configured_address(ctx.cfg) or "127.0.0.1:4573"
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        print("asterisk-kit: --listen expects HOST:PORT, e.g. 127.0.0.1:4573", file=sys.stderr)
        return 2
    log = ctx.logger("fastagi")
    cfg = ctx.cfg
    with ctx.lock(f"fastagi-{port}"):
        server = make_server(cfg, host, int(port), log)
        log.info("FastAGI listening on %s:%s", host, port)
        print(f"FastAGI listening on {host}:{port}", flush=True)
        try:
            server.serve_forever()
        finally:
            server.server_close()
    return 0
