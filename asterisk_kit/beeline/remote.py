"""Uploads to the customer's server: FTP (passive), FTPS (explicit TLS, protected data channel) and
SFTP (paramiko, host key always checked against a known_hosts file).

`publish()` is the one safe way a file reaches its final name: upload to a hidden temporary name,
check the remote size, rename into place (the rename replaces whatever the name held). A final name
therefore only ever holds a complete file, and a file sent again simply replaces itself: never two
copies. When an earlier run may already have put the file there (the caller knows: its local temp
file survived), the final name is looked at first and a file of the right size is not sent again.
No second size check after the rename: a rename moves the checked file as it is.
"""
from __future__ import annotations

import ftplib
import io
import logging
import os
import posixpath
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:      # paramiko is imported when SFTP is used, not with the module
    import paramiko

log = logging.getLogger("asterisk_kit.beeline.remote")

BLOCK = 256 * 1024


class RemoteError(Exception):
    """The destination failed (connection, login, permission, size mismatch); worth a retry."""


class HostKeyError(RemoteError):
    """The SFTP server's host key is unknown or changed: never retried, never accepted."""


class RefusedError(RemoteError):
    """The server, connected and logged in, refused this one file (FTP 5xx reply to STOR/RNFR, SFTP
    permission denied): not retried within the run; the record waits on the retry list."""


Source = Union[str, bytes]     # a local file's path, or the bytes themselves (the small JSON)


@dataclass
class Destination:
    scheme: str
    user: str
    host: str
    port: int
    directory: str

    @classmethod
    def parse(cls, url: str) -> "Destination":
        u = urlsplit(url)
        default = 22 if u.scheme == "sftp" else 21
        return cls(u.scheme, unquote(u.username or ""), u.hostname or "", u.port or default,
                   unquote(u.path) or "")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}{self.directory or '/'}"


def temp_name(name: str) -> str:
    # Hidden, so the customer's processing (which looks for *.mp3 / *.json) never sees it.
    return f".{name}.part"


class Uploader:
    """Base: subclasses provide connect/close/size/put/rename/delete on names inside the directory."""

    def __init__(self, dest: Destination, c: dict):
        self.dest, self.c = dest, c
        self.connected = False

    def connect(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def size(self, name: str) -> Optional[int]:
        raise NotImplementedError

    def put(self, src: Source, name: str) -> None:
        raise NotImplementedError

    def rename(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def publish(self, src: Source, name: str, size: int, maybe_there: bool = True) -> int:
        """Put SRC (SIZE bytes) at NAME safely; returns the bytes sent (0 if already there).
        MAYBE_THERE: an earlier run may have put it in place; look before sending."""
        if not self.connected:
            self.connect()
        if maybe_there:
            existing = self.size(name)
            if existing == size:
                log.info("%s already on %s with %d bytes (earlier run); not sent again", name, self.dest, size)
                return 0
            if existing is not None:
                log.warning("%s on %s held %d bytes, expected %d; replacing it", name, self.dest, existing, size)
        tmp = temp_name(name)
        self.put(src, tmp)
        got = self.size(tmp)
        if got != size:
            raise RemoteError(f"{tmp} on {self.dest}: {got} bytes after upload, expected {size}")
        self.rename(tmp, name)
        return size

    def probe(self) -> str:
        """Doctor: connect, write and remove a small file; returns a description."""
        import tempfile
        self.connect()
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"asterisk-kit doctor probe\n")
            f.flush()
            self.put(f.name, ".asterisk-kit-probe")
        ok = self.size(".asterisk-kit-probe") == 26
        self.delete(".asterisk-kit-probe")
        if not ok:
            raise RemoteError("probe file has the wrong size after upload")
        return f"{self.dest} reachable and writable"


# ---- FTP / FTPS --------------------------------------------------------------------------------

def _store(ftp: ftplib.FTP, cmd: str, fp, blocksize: int):
    """ftplib's storbinary without its `TYPE I` before every file (connect() set binary mode once
    for the session: two commands less per record), and for FTPS without ftplib's wait for the
    server's TLS close_notify on the data channel: pyftpdlib and others close it without one,
    and ftplib's unwrap() then raises SSLEOFError for an upload the server confirmed with 226.
    The size check in publish() still catches any short file."""
    with ftp.transfercmd(cmd) as conn:
        while True:
            buf = fp.read(blocksize)
            if not buf:
                break
            conn.sendall(buf)
        if isinstance(conn, ssl.SSLSocket):
            try:
                conn.unwrap()           # our close_notify: the server knows the file is whole
            except ssl.SSLError:
                pass
    return ftp.voidresp()


class FtpUploader(Uploader):
    def __init__(self, dest: Destination, c: dict):
        super().__init__(dest, c)
        self.ftp: Optional[ftplib.FTP] = None

    def connect(self) -> None:
        self.close()
        c, d = self.c, self.dest
        timeout = c["transfer_timeout"]
        ftp: ftplib.FTP
        try:
            if d.scheme == "ftps":
                ctx = ssl.create_default_context(cafile=c.get("tls_ca_file") or None)
                ftp = ftplib.FTP_TLS(context=ctx, timeout=timeout)
            else:
                ftp = ftplib.FTP(timeout=timeout)
            ftp.connect(d.host, d.port)
            ftp.login(d.user, c["password"])      # FTP_TLS: AUTH TLS before USER
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(True)
            ftp.voidcmd("TYPE I")
            if d.directory:
                self._cd(ftp, d.directory)
        except ssl.SSLError as e:
            raise RemoteError(f"{d}: TLS failed: {e}") from None
        except ftplib.error_perm as e:
            raise RemoteError(f"{d}: refused: {e}") from None
        except (OSError, EOFError, ftplib.Error) as e:
            raise RemoteError(f"{d}: {type(e).__name__}: {e}") from None
        self.ftp, self.connected = ftp, True

    @staticmethod
    def _cd(ftp: ftplib.FTP, directory: str) -> None:
        try:
            ftp.cwd(directory)
            return
        except ftplib.error_perm:
            pass
        path = "/" if directory.startswith("/") else ""
        for part in [p for p in directory.split("/") if p]:
            path = posixpath.join(path, part) if path else part
            try:
                ftp.cwd(path)
            except ftplib.error_perm:
                ftp.mkd(path)
        ftp.cwd(directory)

    def _session(self) -> ftplib.FTP:
        """The open connection (publish() connects first; a failed command closes it)."""
        if self.ftp is None:
            raise RemoteError(f"{self.dest}: not connected")
        return self.ftp

    def close(self) -> None:
        if self.ftp is not None:
            try:
                self.ftp.quit()
            except Exception:
                self.ftp.close()
            self.ftp = None
        self.connected = False

    def _call(self, what: str, fn, *a):
        try:
            return fn(*a)
        except (OSError, EOFError, ftplib.Error) as e:
            self.close()
            raise RemoteError(f"{self.dest}: {what}: {type(e).__name__}: {e}") from None

    def size(self, name: str) -> Optional[int]:
        try:
            return self._session().size(name)
        except ftplib.error_perm:           # 550: no such file
            return None
        except (OSError, EOFError, ftplib.Error) as e:
            self.close()
            raise RemoteError(f"{self.dest}: SIZE {name}: {type(e).__name__}: {e}") from None

    def put(self, src: Source, name: str) -> None:
        with (io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")) as f:
            try:
                _store(self._session(), f"STOR {name}", f, BLOCK)
            except ftplib.error_perm as e:      # 5xx: this file refused, the session is fine
                raise RefusedError(f"{self.dest}: STOR {name} refused: {e}") from None
            except (OSError, EOFError, ftplib.Error) as e:
                self.close()
                raise RemoteError(f"{self.dest}: STOR {name}: {type(e).__name__}: {e}") from None

    def rename(self, src: str, dst: str) -> None:
        try:
            self._session().rename(src, dst)
            return
        except ftplib.error_perm:       # some servers refuse RNTO onto an existing file
            if self.size(dst) is None:
                raise RefusedError(f"{self.dest}: RNFR {src} RNTO {dst} refused") from None
        except (OSError, EOFError, ftplib.Error) as e:
            self.close()
            raise RemoteError(f"{self.dest}: RNFR {src} RNTO {dst}: {type(e).__name__}: {e}") from None
        self.delete(dst)
        self._call(f"RNFR {src} RNTO {dst}", self._session().rename, src, dst)

    def delete(self, name: str) -> None:
        self._call(f"DELE {name}", self._session().delete, name)


# ---- SFTP --------------------------------------------------------------------------------------

class SftpUploader(Uploader):
    def __init__(self, dest: Destination, c: dict):
        super().__init__(dest, c)
        self.ssh: Optional[paramiko.SSHClient] = None
        self.sftp: Optional[paramiko.SFTPClient] = None

    def known_hosts_path(self) -> str:
        return os.path.expanduser(self.c.get("known_hosts") or "~/.ssh/known_hosts")

    def connect(self) -> None:
        import paramiko
        self.close()
        c, d = self.c, self.dest
        kh = self.known_hosts_path()
        pin = (f"pin it with: ssh-keyscan -p {d.port} {d.host} >> {kh} "
               "(and compare the fingerprint with the server's owner)")
        if not os.path.isfile(kh):
            raise HostKeyError(f"{d}: known_hosts file {kh} does not exist; {pin}")
        ssh = paramiko.SSHClient()
        try:
            ssh.load_host_keys(kh)
        except (OSError, paramiko.SSHException) as e:
            raise HostKeyError(f"{d}: cannot read known_hosts {kh}: {e}") from None
        ssh.set_missing_host_key_policy(paramiko.RejectPolicy())   # never trust an unknown key
        timeout = c["transfer_timeout"]
        try:
            ssh.connect(d.host, port=d.port, username=d.user, password=c["password"] or None,
                        key_filename=c["key_file"] or None, passphrase=c.get("key_passphrase") or None,
                        timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                        allow_agent=False, look_for_keys=False)
            sftp = ssh.open_sftp()
            channel = sftp.get_channel()      # always set on a client open_sftp() made
            if channel is not None:
                channel.settimeout(timeout)
            if d.directory:
                self._cd(sftp, d.directory)
        except paramiko.BadHostKeyException as e:
            ssh.close()
            raise HostKeyError(f"{d}: host key CHANGED ({e}); refusing to connect. If the change is "
                               f"expected, remove the old line from {kh} and {pin}") from None
        except paramiko.SSHException as e:
            ssh.close()
            if "not found in known_hosts" in str(e):
                raise HostKeyError(f"{d}: host key of the server is not in {kh}; refusing to connect; {pin}") from None
            raise RemoteError(f"{d}: SSH: {e}") from None
        except (OSError, EOFError) as e:
            ssh.close()
            raise RemoteError(f"{d}: {type(e).__name__}: {e}") from None
        self.ssh, self.sftp, self.connected = ssh, sftp, True

    @staticmethod
    def _cd(sftp, directory: str) -> None:
        try:
            sftp.chdir(directory)
            return
        except IOError:
            pass
        path = "/" if directory.startswith("/") else ""
        for part in [p for p in directory.split("/") if p]:
            path = posixpath.join(path, part) if path else part
            try:
                sftp.stat(path)
            except IOError:
                sftp.mkdir(path)
        sftp.chdir(directory)

    def _session(self) -> paramiko.SFTPClient:
        """The open SFTP session (publish() connects first; a failed command closes it)."""
        if self.sftp is None:
            raise RemoteError(f"{self.dest}: not connected")
        return self.sftp

    def close(self) -> None:
        for x in (self.sftp, self.ssh):
            if x is not None:
                try:
                    x.close()
                except Exception:
                    pass
        self.sftp = self.ssh = None
        self.connected = False

    def _call(self, what: str, fn, *a):
        import paramiko
        try:
            return fn(*a)
        except (OSError, EOFError, paramiko.SSHException, socket.timeout) as e:
            self.close()
            raise RemoteError(f"{self.dest}: {what}: {type(e).__name__}: {e}") from None

    def size(self, name: str) -> Optional[int]:
        try:
            return self._session().stat(name).st_size
        except FileNotFoundError:
            return None
        except IOError as e:
            if getattr(e, "errno", None) == 2:
                return None
            self.close()
            raise RemoteError(f"{self.dest}: stat {name}: {e}") from None

    def put(self, src: Source, name: str) -> None:
        # confirm=False: publish() checks the size itself, with one clear message.
        try:
            if isinstance(src, bytes):
                self._session().putfo(io.BytesIO(src), name, len(src), None, False)
            else:
                self._session().put(src, name, None, False)
        except PermissionError as e:
            raise RefusedError(f"{self.dest}: upload {name} refused: {e}") from None
        except Exception as e:
            self._fail(f"upload {name}", e)

    def _fail(self, what: str, e: Exception):
        import paramiko
        if isinstance(e, (OSError, EOFError, paramiko.SSHException, socket.timeout)):
            self.close()
            raise RemoteError(f"{self.dest}: {what}: {type(e).__name__}: {e}") from None
        raise e

    def rename(self, src: str, dst: str) -> None:
        # posix-rename@openssh.com replaces atomically; plain SFTP rename refuses an existing target,
        # so it is the fallback for servers without the extension.
        import paramiko
        try:
            self._session().posix_rename(src, dst)
            return
        except (OSError, EOFError, paramiko.SSHException) as e:
            first = e
        t = self.ssh.get_transport() if self.ssh else None
        if not (t and t.is_active()):
            self.close()
            raise RemoteError(f"{self.dest}: rename {src} -> {dst}: {type(first).__name__}: {first}")
        if self.size(dst) is not None:      # plain SFTP rename refuses an existing target
            self.delete(dst)
        self._call(f"rename {src} -> {dst}", self._session().rename, src, dst)

    def delete(self, name: str) -> None:
        self._call(f"remove {name}", self._session().remove, name)


def make_uploader(c: dict) -> Uploader:
    dest = Destination.parse(c["destination"])
    return SftpUploader(dest, c) if dest.scheme == "sftp" else FtpUploader(dest, c)
