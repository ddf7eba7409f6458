"""The kit's AMI client: a small synchronous one for short jobs (doctor, dialer pacing, CLI).

Why not pyst2's `asterisk.manager`: it runs reader threads and warns on current Pythons; a job that
logs in, asks two things and leaves needs none of that. The long-running BLF daemon has its own
asyncio reader (asterisk_kit/blf/amiconn.py). Values are checked for CR/LF so nothing can inject a header.
"""
from __future__ import annotations

import itertools
import socket
from typing import Dict, List, Optional, Tuple

Message = Dict[str, str]


class AmiError(Exception):
    pass


class AmiAuthError(AmiError):
    pass


def _check(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise AmiError("AMI values cannot contain line breaks")
    return value


class AmiClient:
    def __init__(self, host: str, port: int, user: str, secret: str, timeout: float = 5.0):
        self.host, self.port, self.user, self.secret, self.timeout = host, port, user, secret, timeout
        self.sock: Optional[socket.socket] = None
        self.banner = ""
        self._buf = b""
        self._ids = itertools.count(1)

    @classmethod
    def from_config(cls, cfg) -> "AmiClient":
        a = cfg["asterisk"]
        return cls(a["ami_host"], a["ami_port"], a.get("ami_user", ""), a.get("ami_secret", ""), a["ami_timeout"])

    # -- connection --
    def connect(self) -> "AmiClient":
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as e:
            raise AmiError(f"cannot connect to AMI at {self.host}:{self.port}: {e}") from None
        self.banner = self._readline()
        if not self.banner.startswith("Asterisk Call Manager"):
            raise AmiError(f"{self.host}:{self.port} is not AMI (said {self.banner[:60]!r})")
        resp = self.action("Login", Username=self.user, Secret=self.secret, Events="off")
        if resp.get("Response") != "Success":
            raise AmiAuthError(f"AMI login as {self.user!r} refused: {resp.get('Message', 'no reason given')}")
        return self

    def close(self) -> None:
        if self.sock:
            try:
                self.action("Logoff")
            except (AmiError, OSError):
                pass
            self.sock.close()
            self.sock = None

    def __enter__(self) -> "AmiClient":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- wire --
    def _readline(self) -> str:
        while b"\r\n" not in self._buf:
            self._recv()
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def _recv(self) -> None:
        assert self.sock is not None
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise AmiError(f"AMI at {self.host}:{self.port} did not answer within {self.timeout:g}s") from None
        except OSError as e:
            raise AmiError(f"AMI connection lost: {e}") from None
        if not chunk:
            raise AmiError("AMI closed the connection")
        self._buf += chunk

    def _read_message(self) -> Message:
        while b"\r\n\r\n" not in self._buf:
            self._recv()
        block, self._buf = self._buf.split(b"\r\n\r\n", 1)
        msg: Message = {}
        for line in block.decode("utf-8", "replace").split("\r\n"):
            k, sep, v = line.partition(":")
            if sep and k.strip() == "Output":
                msg["Output"] = msg.get("Output", "") + v[1:] + "\n"
            elif sep:
                msg.setdefault(k.strip(), v.strip())
            elif line.strip():
                msg.setdefault("Output", "")
                msg["Output"] += line + "\n"
        return msg

    def _send(self, action: str, fields: Dict[str, str]) -> str:
        assert self.sock is not None, "not connected"
        aid = f"akit-{next(self._ids)}"
        lines = [f"Action: {_check(action)}", f"ActionID: {aid}"]
        for k, v in fields.items():
            if isinstance(v, (list, tuple)):
                lines += [f"{_check(k)}: {_check(str(x))}" for x in v]
            else:
                lines.append(f"{_check(k)}: {_check(str(v))}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return aid

    # -- API --
    def action(self, action: str, **fields) -> Message:
        aid = self._send(action, fields)
        while True:
            msg = self._read_message()
            if msg.get("ActionID") == aid and "Response" in msg:
                return msg

    def list_action(self, action: str, **fields) -> Tuple[Message, List[Message]]:
        """An action answered by a list of events ending in '...Complete'."""
        aid = self._send(action, fields)
        resp: Optional[Message] = None
        events: List[Message] = []
        while True:
            msg = self._read_message()
            if msg.get("ActionID") != aid:
                continue
            if "Response" in msg:
                resp = msg
                if msg["Response"] != "Success":
                    return resp, events
                continue
            if msg.get("EventList") == "Complete" or msg.get("Event", "").endswith("Complete"):
                return resp or {}, events
            events.append(msg)

    def command(self, cli: str) -> str:
        """Run a CLI command through AMI; returns its output text."""
        resp = self.action("Command", Command=cli)
        return resp.get("Output", "")

    def active_channels(self) -> int:
        _, events = self.list_action("CoreShowChannels")
        return len(events)
