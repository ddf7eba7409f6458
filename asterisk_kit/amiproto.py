"""The AMI protocol without I/O: bytes in, messages and finished actions out.

Both AMI clients of the kit sit on this one core: the synchronous `AmiClient` of short jobs
(asterisk_kit/ami.py) and the asyncio connection of the BLF daemon (asterisk_kit/blf/amiconn.py).
They only move bytes; framing, parsing, login, ActionID correlation, list actions and refusals
live here, so both behave the same and the tests replay byte streams recorded from a real Asterisk.

- Framing works on bytes and decodes a message only once it is complete, so a UTF-8 character
  split across two TCP reads survives (decoding each read on its own would break it).
- An answer `Response: Error` raises `AmiActionError` naming the action and Asterisk's message
  ("Permission denied" when the AMI user lacks the action's class), never passes as an answer.
- List actions (ExtensionStateList, CoreShowChannels, ...) are collected up to their `...Complete` event.
- Values are checked for CR/LF, so nothing can add a header to an action.
"""
from __future__ import annotations

import hashlib
import itertools
from typing import Callable, Dict, List, Optional

Message = Dict[str, str]

BANNER_PREFIX = "Asterisk Call Manager"
# Asterisk's answers that say "no": `Error` (Asterisk 1.6 to 22); `Failure` in a few old modules.
_REFUSED = ("error", "failure")


class AmiError(Exception):
    """Anything that went wrong talking to AMI."""


class AmiProtocolError(AmiError):
    """The peer does not speak AMI."""


class AmiActionError(AmiError):
    """Asterisk answered an action with `Response: Error`."""

    def __init__(self, action: str, message: str, response: Optional[Message] = None):
        self.action, self.message, self.response = action, message, response or {}
        super().__init__(f"Asterisk refused {action}: {message or 'no reason given'}")

    @property
    def permission_denied(self) -> bool:
        return self.message.strip().lower() == "permission denied"


class AmiAuthError(AmiActionError):
    """Login refused (wrong user or secret, or a host the user may not log in from)."""

    def __init__(self, user: str, message: str, response: Optional[Message] = None):
        AmiError.__init__(self, f"AMI login as {user!r} refused: {message or 'no reason given'}")
        self.action, self.message, self.response, self.user = "Login", message, response or {}, user


def check_value(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise AmiError("AMI values cannot contain line breaks")
    return value


def encode_action(action: str, action_id: str, fields: Dict[str, object]) -> bytes:
    """One action on the wire; a list or tuple value repeats its header (e.g. Variable)."""
    lines = [f"Action: {check_value(action)}", f"ActionID: {check_value(action_id)}"]
    for k, v in fields.items():
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            lines.append(f"{check_value(k)}: {check_value(str(x))}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parse_message(block: bytes) -> Message:
    """One message (without its blank line). The first value of a repeated header wins, except
    `Output`, whose lines (Command's answer) are joined with newlines, as are lines without a colon
    (the body of an old-style `Response: Follows`)."""
    msg: Message = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        k, sep, v = line.partition(":")
        key = k.strip()
        if sep and key == "Output":
            msg["Output"] = msg.get("Output", "") + v[1:] + "\n"
        elif sep and key and " " not in key:
            msg.setdefault(key, v.strip())
        elif line.strip() and line.strip() != "--END COMMAND--":
            msg["Output"] = msg.get("Output", "") + line + "\n"
    return msg


class Decoder:
    """Incremental framing: feed it any chunks of bytes, it returns the banner line (first) and
    then complete messages, each decoded only once whole."""

    def __init__(self, max_message: int = 1 << 20):
        self.banner: Optional[str] = None
        self._buf = bytearray()
        self._max = max_message

    def feed(self, data: bytes) -> List[Message]:
        self._buf += data
        out: List[Message] = []
        if self.banner is None:
            end = self._buf.find(b"\r\n")
            if end < 0:
                if len(self._buf) > 200:
                    raise AmiProtocolError(f"not AMI (said {bytes(self._buf[:60])!r})")
                return out
            banner = self._buf[:end].decode("utf-8", "replace")
            del self._buf[:end + 2]
            if not banner.startswith(BANNER_PREFIX):
                raise AmiProtocolError(f"not AMI (said {banner[:60]!r})")
            self.banner = banner
        start = 0
        while True:
            end = self._buf.find(b"\r\n\r\n", start)
            if end < 0:
                break
            block = bytes(self._buf[start:end])
            start = end + 4
            if block.strip():
                out.append(parse_message(block))
        del self._buf[:start]
        if len(self._buf) > self._max:
            raise AmiProtocolError(f"AMI message longer than {self._max} bytes")
        return out


class Pending:
    """An action sent and not fully answered yet. `wire` is what to send."""

    def __init__(self, action: str, action_id: str, wire: bytes, is_list: bool):
        self.action, self.action_id, self.wire, self.is_list = action, action_id, wire, is_list
        self.response: Optional[Message] = None
        self.rows: List[Message] = []
        self.error: Optional[AmiError] = None
        self.done = False
        self.on_done: Optional[Callable[["Pending"], None]] = None

    def result(self):
        """The answer (a message; for a list action, the rows), or the refusal raised."""
        if self.error is not None:
            raise self.error
        if not self.done:
            raise AmiError(f"{self.action} not answered yet")
        return self.rows if self.is_list else self.response


class AmiProtocol:
    """The client side of one AMI session, without I/O.

    `action()` / `list_action()` return a Pending whose `wire` the transport sends;
    `receive(bytes)` feeds what came back. Messages are handled in wire order: a finished action
    calls its `on_done` and an event calls `on_event` in the order Asterisk sent them, so a list
    answer is applied before any event that followed it.
    """

    def __init__(self, on_event: Optional[Callable[[Message], None]] = None, id_prefix: str = "akit"):
        self.decoder = Decoder()
        self.on_event = on_event or (lambda msg: None)
        self._ids = itertools.count(1)
        self._prefix = id_prefix
        self._pending: Dict[str, Pending] = {}

    @property
    def banner(self) -> Optional[str]:
        return self.decoder.banner

    # ---- actions ----
    def action(self, action: str, **fields) -> Pending:
        return self._new(action, fields, False)

    def list_action(self, action: str, **fields) -> Pending:
        return self._new(action, fields, True)

    def _new(self, action: str, fields: Dict[str, object], is_list: bool) -> Pending:
        aid = f"{self._prefix}-{next(self._ids)}"
        p = Pending(action, aid, encode_action(action, aid, fields), is_list)
        self._pending[aid] = p
        return p

    def forget(self, p: Pending) -> None:
        """Stop waiting for an action (timed out): a late answer is then ignored."""
        self._pending.pop(p.action_id, None)

    def fail_all(self, error: AmiError) -> None:
        """The connection is gone: every action still waiting fails with `error`."""
        for p in list(self._pending.values()):
            self._finish(p, error)

    # ---- login ----
    def login(self, user: str, secret: str, events: bool = False) -> Pending:
        return self.action("Login", Username=user, Secret=secret, Events="on" if events else "off")

    def challenge(self) -> Pending:
        """First step of the md5 login: Asterisk answers with a `Challenge`."""
        return self.action("Challenge", AuthType="md5")

    def login_md5(self, user: str, secret: str, challenge: str, events: bool = False) -> Pending:
        """Second step: the secret never crosses the wire, only md5(challenge + secret)."""
        key = hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()
        return self.action("Login", AuthType="md5", Username=user, Key=key, Events="on" if events else "off")

    # ---- bytes in ----
    def receive(self, data: bytes) -> None:
        for msg in self.decoder.feed(data):
            self._dispatch(msg)

    def _dispatch(self, msg: Message) -> None:
        p = self._pending.get(msg.get("ActionID", ""))
        if p is None:
            if "Event" in msg:
                self.on_event(msg)
            return
        if "Response" in msg:
            p.response = msg
            if msg["Response"].strip().lower() in _REFUSED:
                self._finish(p, self._refusal(p, msg))
            elif not p.is_list:
                self._finish(p, None)
            return                  # a list goes on until its ...Complete event
        if p.is_list and "Event" in msg:
            if msg.get("EventList", "").lower() == "complete" or msg["Event"].endswith("Complete"):
                self._finish(p, None)
            else:
                p.rows.append(msg)
            return
        if "Event" in msg:          # an event carrying our ActionID that is not part of a list
            self.on_event(msg)

    def _refusal(self, p: Pending, msg: Message) -> AmiActionError:
        why = msg.get("Message", "")
        if p.action == "Login":
            user = p.wire.split(b"Username: ", 1)[-1].split(b"\r\n", 1)[0].decode("utf-8", "replace")
            return AmiAuthError(user, why, msg)
        return AmiActionError(p.action, why, msg)

    def _finish(self, p: Pending, error: Optional[AmiError]) -> None:
        self._pending.pop(p.action_id, None)
        p.error, p.done = error, True
        if p.on_done is not None:
            p.on_done(p)
