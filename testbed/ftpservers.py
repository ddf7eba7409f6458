"""Real file servers on 127.0.0.1 for the Beeline export tests: FTP and FTPS (pyftpdlib, FTPS with
a certificate made by `openssl` at test time, subjectAltName=IP:127.0.0.1) and SFTP (Debian's
OpenSSH sshd with its own config, host key and authorized key, run as the current user).

Fault hooks: FtpServer.drop_upload_after(n) closes the control and data connections of the next
upload once n bytes arrived; CuttingProxy forwards TCP to a server and cuts the next connection
after n bytes from the client (used in front of sshd).
"""
from __future__ import annotations

import getpass
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

from testbed.asterisk import free_port

FTP_USER, FTP_PASSWORD = "kit", "ftp-secret"


def _wait_port(port: int, deadline: float = 30.0, proc: Optional[subprocess.Popen] = None) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {deadline} s")


def make_cert(directory: Path) -> tuple:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


class FtpServer:
    """pyftpdlib on its own IOLoop in a thread; `root` is the user's home (the FTP "/")."""

    def __init__(self, root: Path, tls: bool = False, certdir: Optional[Path] = None):
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import DTPHandler, FTPHandler, TLS_DTPHandler, TLS_FTPHandler
        from pyftpdlib.ioloop import IOLoop
        from pyftpdlib.servers import FTPServer
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self._drop_after: Optional[int] = None
        self.drops = 0
        self.commands: list = []        # every command received, in order (its name only)
        owner = self
        auth = DummyAuthorizer()
        auth.add_user(FTP_USER, FTP_PASSWORD, str(self.root), perm="elradfmwMT")
        base_dtp = TLS_DTPHandler if tls else DTPHandler

        class Dtp(base_dtp):
            def handle_read(self):
                super().handle_read()
                limit = owner._drop_after
                if limit is not None and self.receive and self.tot_bytes_received >= limit:
                    owner._drop_after = None
                    owner.drops += 1
                    cmd = self.cmd_channel
                    self.close()
                    cmd.close()          # the whole session goes, as when a link dies

            handle_read_event = handle_read      # the base class aliases its own method

        base = TLS_FTPHandler if tls else FTPHandler

        def process_command(self, cmd, *args, **kwargs):
            owner.commands.append(cmd)
            return base.process_command(self, cmd, *args, **kwargs)

        attrs = {"authorizer": auth, "dtp_handler": Dtp, "banner": "test ftp", "passive_ports": None,
                 "permit_foreign_addresses": False, "process_command": process_command}
        if tls:
            self.cert, key = make_cert(Path(certdir or self.root.parent / "ftps-cert"))
            attrs.update(certfile=str(self.cert), keyfile=str(key),
                         tls_control_required=True, tls_data_required=True)
        handler = type("Handler", (base,), attrs)
        self.ioloop = IOLoop()
        self.server = FTPServer(("127.0.0.1", 0), handler, ioloop=self.ioloop)
        self.port = self.server.address[1]
        self._stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        _wait_port(self.port)

    def _loop(self) -> None:
        # One poll at a time, so stop() ends the loop in this thread before the sockets are closed
        # (closing them from another thread under a running select() gives EBADF there).
        while not self._stopping:
            self.server.serve_forever(timeout=0.1, blocking=False, handle_exit=False)
        self.server.close_all()

    def drop_upload_after(self, n: int) -> None:
        self._drop_after = n

    def url(self, directory: str = "/incoming") -> str:
        return f"{'ftps' if self.tls else 'ftp'}://{FTP_USER}@127.0.0.1:{self.port}{directory}"

    def stop(self) -> None:
        self._stopping = True
        self.thread.join(10)


class Sshd:
    """OpenSSH sshd on a free port, key login for the current user, internal-sftp."""

    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.client_key = self.dir / "client_ed25519"
        for k in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(k)],
                           check=True, capture_output=True)
        auth = self.dir / "authorized_keys"
        auth.write_text((self.dir / "client_ed25519.pub").read_text())
        auth.chmod(0o600)
        self.port = free_port()
        conf = self.dir / "sshd_config"
        conf.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}", "UsePAM no", "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            f"AuthorizedKeysFile {auth}", "StrictModes no", "Subsystem sftp internal-sftp",
            "LogLevel ERROR", "MaxStartups 50", ""]))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # privilege separation dir
        # Its log goes to a file: a pipe nobody reads would block sshd once full.
        self.log = self.dir / "sshd.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        try:
            _wait_port(self.port, proc=self.proc)
        except RuntimeError as e:
            raise RuntimeError(f"{e}; sshd said: {self.log.read_text(errors='replace')[-2000:]}") from None

    def known_hosts_line(self, port: Optional[int] = None) -> str:
        kind, key = (self.dir / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{port or self.port} {kind} {key}\n"

    def url(self, directory: str, port: Optional[int] = None) -> str:
        return f"sftp://{self.user}@127.0.0.1:{port or self.port}{directory}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class CuttingProxy:
    """TCP forwarder 127.0.0.1:port -> target; cut_after(n) drops the next connection that has sent
    n bytes upstream (both directions closed at once, like a dead link)."""

    def __init__(self, target_port: int):
        self.target = target_port
        self._cut: Optional[int] = None
        self.cuts = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(20)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, n: int) -> None:
        self._cut = n

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                sent += len(data)
                if upstream and self._cut is not None and sent >= self._cut:
                    self._cut = None
                    self.cuts += 1
                    break
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def stop(self) -> None:
        self._stop = True
        self.sock.close()


def main() -> None:
    """`python -m testbed.ftpservers ROOT [--tls]`: an FTP server in its own process (benchmarks);
    prints the URL, serves until killed."""
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--tls", action="store_true")
    a = p.parse_args()
    import logging
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    s = FtpServer(Path(a.root), tls=a.tls)
    print(s.url(), flush=True)
    try:
        s.thread.join()
    except KeyboardInterrupt:
        s.stop()


if __name__ == "__main__":
    main()
