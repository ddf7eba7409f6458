"""The kit's synchronous AMI client for short jobs (install --reload, doctor, dialer pacing, CLI).

A thin socket transport around the protocol core (asterisk_kit/amiproto.py), which the BLF daemon's
asyncio connection (asterisk_kit/blf/amiconn.py) shares. Why not pyst2's `asterisk.manager`: it runs
reader threads and warns on current Pythons; a job that logs in, asks two things and leaves needs
none of that. An action Asterisk refuses raises `AmiActionError` naming the action and Asterisk's
message (e.g. "Permission denied" when the AMI user lacks the action's class).
"""
from __future__ import annotations

import socket
from collections import deque
from typing import Deque, List, Optional, Tuple

from .amiproto import AmiActionError, AmiAuthError, AmiError, AmiProtocol, AmiProtocolError, Message, Pending

__all__ = ["AmiClient", "AmiError", "AmiActionError", "AmiAuthError", "AmiProtocolError", "Message",
           "ami_credentials"]


def ami_credentials(cfg, section: Optional[str] = None) -> Tuple[str, str]:
    """(user, secret) for a role: the section's own `ami_user`/`ami_secret` when it sets a user,
    else [asterisk]'s (Config.ami_credentials), so one AMI user can serve everything or each role
    gets its least classes."""
    return cfg.ami_credentials(section or "asterisk")


class AmiClient:
    def __init__(self, host: str, port: int, user: str, secret: str, timeout: float = 5.0, md5: bool = False):
        self.host, self.port, self.user, self.secret, self.timeout = host, port, user, secret, timeout
        self.md5 = md5
        self.sock: Optional[socket.socket] = None
        self.banner = ""
        # Events arrive only after the `Events` action turns them on (logins say Events: off);
        # kept, bounded, for next_event().
        self._events: Deque[Message] = deque(maxlen=10000)
        self.proto = AmiProtocol(on_event=self._events.append)

    @classmethod
    def from_config(cls, cfg, section: Optional[str] = None) -> "AmiClient":
        """The client of a role: `section` ("blf", "dialer") may name its own AMI user."""
        a = cfg["asterisk"]
        user, secret = ami_credentials(cfg, section)
        return cls(a["ami_host"], a["ami_port"], user, secret, a["ami_timeout"])

    # -- connection --
    def connect(self) -> "AmiClient":
        if self.sock is not None:
            return self
        self.proto = AmiProtocol(on_event=self._events.append)
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as e:
            raise AmiError(f"cannot connect to AMI at {self.host}:{self.port}: {e}") from None
        try:
            while self.proto.banner is None:
                self._recv()
            self.banner = self.proto.banner
            if self.md5:
                challenge = self._wait(self.proto.challenge())["Challenge"]
                self._wait(self.proto.login_md5(self.user, self.secret, challenge))
            else:
                self._wait(self.proto.login(self.user, self.secret))
        except AmiProtocolError as e:
            self._drop()
            raise AmiProtocolError(f"{self.host}:{self.port} is {e}") from None
        except AmiError:
            self._drop()
            raise
        return self

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.action("Logoff")
            except (AmiError, OSError):
                pass
            self._drop()

    def _drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> "AmiClient":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- wire --
    def _recv(self) -> None:
        assert self.sock is not None, "not connected"
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise AmiError(f"AMI at {self.host}:{self.port} did not answer within {self.timeout:g}s") from None
        except OSError as e:
            raise AmiError(f"AMI connection lost: {e}") from None
        if not chunk:
            raise AmiError("AMI closed the connection")
        self.proto.receive(chunk)

    def _wait(self, p: Pending):
        if self.sock is None:
            raise AmiError("AMI not connected")
        try:
            self.sock.sendall(p.wire)
            while not p.done:
                self._recv()
        except OSError as e:
            raise AmiError(f"AMI connection lost: {e}") from None
        finally:
            self.proto.forget(p)
        return p.result()

    # -- API --
    def next_event(self) -> Message:
        """The next event Asterisk sent (after the `Events` action turned them on); AmiError when
        none comes within the timeout."""
        while not self._events:
            self._recv()
        return self._events.popleft()

    def action(self, action: str, **fields) -> Message:
        """Send an action, return its answer; `Response: Error` raises AmiActionError."""
        return self._wait(self.proto.action(action, **fields))

    def list_action(self, action: str, **fields) -> Tuple[Message, List[Message]]:
        """An action answered by a list of events ending in '...Complete': (response, rows)."""
        p = self.proto.list_action(action, **fields)
        rows = self._wait(p)
        return p.response or {}, rows

    def command(self, cli: str, check: bool = False) -> str:
        """Run a CLI command through AMI (write class `command`); returns its output text.

        A CLI command that fails (e.g. `dialplan show` of a missing context) comes back from
        Asterisk as `Response: Error` with `Message: Command output follows` and its output: that
        output is returned, or raised as AmiActionError with check=True. A refusal (e.g.
        "Permission denied") always raises."""
        try:
            return self.action("Command", Command=cli).get("Output", "")
        except AmiActionError as e:
            if e.message != "Command output follows":
                raise
            out = e.response.get("Output", "")
            if check:
                raise AmiActionError(f"Command {cli!r}", " ".join(out.split()) or "failed", e.response) from None
            return out

    def active_channels(self) -> int:
        _, events = self.list_action("CoreShowChannels")
        return len(events)
