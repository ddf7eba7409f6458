"""`asterisk-kit fastagi`: the kit's AGI handlers served over FastAGI on 127.0.0.1, for busy PBXs
where starting a Python process per call costs too much. The dialplan then says
AGI(agi://127.0.0.1:4573/HANDLER,ARG...) instead of running asterisk-kit-agi.

Written here rather than taken from panoramisk, whose FastAGI spins at 100 % CPU when a client
disconnects before the blank line ending the AGI headers: here a connection that ends (or stalls
HEADER_TIMEOUT seconds) before its headers are complete is simply closed. One thread per
connection; handlers are the same functions as for classic AGI (the descriptors' agi_handlers).

Bursts and safety:
- The listen backlog is BACKLOG, not the stdlib's 5: with 5, a burst of hangups overflowed the
  accept queue, the kernel dropped the SYNs, and Asterisk gave up after its fixed 2 s FastAGI
  connect timeout (MAX_AGI_CONNECT): 8-12 calls of 30 never reached the kit.
- At most `concurrency` requests run at once; the others wait in the backlog (Asterisk is already
  connected, so nothing times out), which bounds threads and store writers.
- Loopback only, only the handlers whose capability is configured (enabled_handlers), and only
  for connections from a process of the Asterisk user, root or the server's own user (the peer's
  uid from /proc/net/tcp): another local user cannot forge a call report or a dialer event.
"""
from __future__ import annotations

import logging
import os
import socket
import socketserver
import sys
import threading
from typing import Dict, Iterable, List, Optional, Set

HEADER_TIMEOUT = 5.0       # seconds for Asterisk to send the AGI environment
COMMAND_TIMEOUT = 10.0     # seconds for Asterisk to answer one AGI command
MAX_HEADERS = 300
BACKLOG = 1024             # the kernel caps it at net.core.somaxconn (4096 on Debian 12)
CONCURRENCY = 64           # requests handled at once (default of --concurrency)
LOOPBACK = ("127.0.0.1", "localhost", "::1")

# AGI handler -> the config section whose presence enables it over FastAGI. (The capability
# descriptors will carry this; enabled_handlers is the one place that reads it.)
def enabled_handlers(cfg) -> Set[str]:
    """The handlers this server may run: those of the capabilities the config sets up."""
    from .capabilities import configured
    return {name for cap in configured(cfg) for name in cap.agi_handlers}


def allowed_uids(cfg) -> Set[int]:
    """Root, the server's own user and the Asterisk user ([asterisk] run_user)."""
    uids = {0, os.getuid()}
    user = cfg["asterisk"]["run_user"]
    if user:
        import pwd
        try:
            uids.add(pwd.getpwnam(user).pw_uid)
        except KeyError:
            pass
    return uids


def _hex_addr(host: str, port: int, v6: bool) -> str:
    import socket
    raw = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, host)
    # /proc/net/tcp* print the address as native-endian 32-bit words.
    words = [raw[i:i + 4][::-1] if sys.byteorder == "little" else raw[i:i + 4] for i in range(0, len(raw), 4)]
    return b"".join(words).hex().upper() + f":{port:04X}"


def peer_uid(local, peer) -> Optional[int]:
    """The uid owning the client end of a loopback TCP connection (LOCAL and PEER are our socket's
    (host, port, ...) addresses), from /proc/net/tcp or tcp6; None when not found."""
    v6 = ":" in local[0]
    want_local, want_remote = _hex_addr(peer[0], peer[1], v6), _hex_addr(local[0], local[1], v6)
    try:
        with open("/proc/net/tcp6" if v6 else "/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1] == want_local and fields[2] == want_remote:
                    return int(fields[7])
    except OSError:
        return None
    return None


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


def make_server(cfg, host: str, port: int, log: logging.Logger, concurrency: int = CONCURRENCY,
                handlers: Optional[Iterable[str]] = None) -> socketserver.ThreadingTCPServer:
    from .agi import run_handler
    enabled = set(enabled_handlers(cfg) if handlers is None else handlers)
    uids = allowed_uids(cfg)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            uid = peer_uid(self.request.getsockname(), self.client_address)
            if uid not in uids:
                log.warning("fastagi: connection from port %s refused: its process runs as uid %s, not the "
                            "Asterisk user", self.client_address[1], uid)
                return
            self.request.settimeout(HEADER_TIMEOUT)
            try:
                env = read_env(self.rfile)
            except OSError as e:          # stalled: timeout
                log.warning("fastagi: port %s sent no complete AGI headers (%s)", self.client_address[1], e)
                return
            if env is None:
                log.info("fastagi: port %s left before the AGI headers ended", self.client_address[1])
                return
            self.request.settimeout(COMMAND_TIMEOUT)
            name, args = handler_args(env)
            if name not in enabled:
                log.warning("fastagi: handler %r refused (served: %s)", name[:80], ", ".join(sorted(enabled)) or "none")
                return
            agi = FastAgi(self.rfile, self.wfile, env)
            run_handler(agi, name, args, lambda: (cfg, log))

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = BACKLOG
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        def __init__(self, *a, **kw):
            self.slots = threading.BoundedSemaphore(concurrency)
            super().__init__(*a, **kw)

        def process_request(self, request, client_address):
            self.slots.acquire()      # a full house: the next connections wait in the backlog
            try:
                super().process_request(request, client_address)
            except BaseException:
                self.slots.release()
                raise

        def process_request_thread(self, request, client_address):
            try:
                super().process_request_thread(request, client_address)
            finally:
                self.slots.release()

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
                   help="a loopback address; default: the address a configured capability's dialplan uses "
                        "(e.g. [nimbox] fastagi), else 127.0.0.1:4573 (Asterisk's FastAGI port)")
    p.add_argument("--concurrency", metavar="N", type=int, default=CONCURRENCY,
                   help=f"requests handled at once, the others wait (default {CONCURRENCY})")
    p.set_defaults(func=run)


def run(ctx) -> int:
    listen = ctx.args.listen or configured_address(ctx.cfg) or "127.0.0.1:4573"
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        print("asterisk-kit: --listen expects HOST:PORT, e.g. 127.0.0.1:4573", file=sys.stderr)
        return 2
    if host not in LOOPBACK:
        print(f"asterisk-kit: --listen {listen}: the FastAGI server listens on the loopback only "
              f"(127.0.0.1, ::1 or localhost)", file=sys.stderr)
        return 2
    if not 1 <= ctx.args.concurrency <= 1024:
        print("asterisk-kit: --concurrency expects 1..1024", file=sys.stderr)
        return 2
    log = ctx.logger("fastagi")
    cfg = ctx.cfg
    handlers = enabled_handlers(cfg)
    if not handlers:
        print("asterisk-kit: no capability served over FastAGI is configured (e.g. [nimbox])", file=sys.stderr)
        return 2
    with ctx.lock(f"fastagi-{port}"):
        server = make_server(cfg, "127.0.0.1" if host == "localhost" else host, int(port), log,
                             concurrency=ctx.args.concurrency, handlers=handlers)
        log.info("FastAGI listening on %s:%s (%s; at most %d at once)", host, port, ", ".join(sorted(handlers)),
                 ctx.args.concurrency)
        print(f"FastAGI listening on {host}:{port}", flush=True)
        try:
            server.serve_forever()
        finally:
            server.server_close()
    return 0
