"""The BLF daemon's AMI connection: a thin asyncio transport around the protocol core
(asterisk_kit/amiproto.py), which the short jobs' `AmiClient` shares.

Why not panoramisk (the library the issue names): tried, and it gets in the way of exactly what this
daemon must do well. Its Manager reconnects on its own fixed 2 s timer from inside connection_lost
(no backoff, no hook to resync first) and re-sends unanswered actions after a reconnect; its pinger
sends Ping but never checks the answer, so a silently dead link (half-open TCP) is never noticed; a
failed login just leaves `authenticated = False`; and it decodes every TCP chunk on its own with
errors='ignore', which drops UTF-8 characters split across reads. Here the core frames bytes and
decodes whole messages, an action Asterisk refuses raises AmiActionError, and the daemon owns the
reconnect loop.
"""
from __future__ import annotations

import asyncio
from typing import Callable, List, Optional

from ..amiproto import AmiActionError, AmiAuthError, AmiError, AmiProtocol, Message, Pending

__all__ = ["AmiConnection", "AmiLost", "AmiActionError", "AmiAuthError", "Message"]


class AmiLost(AmiError):
    """Connection refused, closed or timed out."""


class AmiConnection:
    def __init__(self, host: str, port: int, user: str, secret: str, timeout: float,
                 on_event: Callable[[Message], None]):
        self.host, self.port, self.user, self.secret, self.timeout = host, port, user, secret, timeout
        self.proto = AmiProtocol(on_event, id_prefix="akit-blf")
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None
        self._reader_task: Optional[asyncio.Task] = None
        self._banner = asyncio.Event()
        self.closed = asyncio.Event()

    async def connect(self) -> str:
        """Connect and log in; returns the banner. AmiLost when unreachable, AmiAuthError when refused."""
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout)
        except (OSError, asyncio.TimeoutError) as e:
            await self.close()
            raise AmiLost(f"cannot connect to AMI at {self.host}:{self.port}: {e or type(e).__name__}") from None
        self._reader_task = asyncio.create_task(self._read_loop())
        try:
            await asyncio.wait_for(self._banner.wait(), self.timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise AmiLost(f"AMI at {self.host}:{self.port} sent no banner within {self.timeout:g} s") from None
        if self.proto.banner is None:       # closed, or not AMI
            await self.close()
            raise AmiLost(f"{self.host}:{self.port}: {self._lost_why or 'AMI closed the connection'}")
        try:
            await self._run(self.proto.login(self.user, self.secret, events=True), None)
        except AmiError:
            await self.close()
            raise
        return self.proto.banner.strip()

    _lost_why = ""

    async def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except Exception:
                pass
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
        self.proto.fail_all(AmiLost("AMI connection lost"))
        self._banner.set()
        self.closed.set()

    async def _read_loop(self) -> None:
        assert self.reader is not None
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.proto.receive(data)        # events and finished actions, in wire order
                if self.proto.banner is not None:
                    self._banner.set()
        except AmiError as e:                   # not AMI, or an absurdly long message
            self._lost_why = str(e)
        except OSError:
            pass
        finally:
            self.proto.fail_all(AmiLost("AMI connection lost"))
            self._banner.set()
            self.closed.set()

    def _send(self, p: Pending) -> None:
        if self.writer is None or self.closed.is_set():
            self.proto.forget(p)
            raise AmiLost("AMI not connected")
        self.writer.write(p.wire)

    async def _run(self, p: Pending, timeout: Optional[float],
                   first: Optional[Callable[[Pending], None]] = None):
        fut = asyncio.get_running_loop().create_future()

        def done(p: Pending) -> None:
            if first is not None:
                first(p)
            if not fut.done():
                fut.set_result(None)
        p.on_done = done
        self._send(p)
        try:
            await asyncio.wait_for(fut, timeout or self.timeout)
        except asyncio.TimeoutError:
            self.proto.forget(p)
            raise AmiLost(f"AMI did not answer {p.action} ({p.action_id}) "
                          f"within {timeout or self.timeout:g} s") from None
        return p.result()

    async def action(self, action: str, timeout: Optional[float] = None, **fields) -> Message:
        """The answer; `Response: Error` raises AmiActionError."""
        return await self._run(self.proto.action(action, **fields), timeout)

    async def list_action(self, action: str, timeout: Optional[float] = None,
                          on_complete: Optional[Callable[[List[Message]], None]] = None, **fields) -> List[Message]:
        """The rows up to the ...Complete event. `on_complete(rows)` runs as soon as the list is read,
        before any event read after it (the wire's order is the truth)."""
        def apply(p: Pending) -> None:
            if on_complete is not None and p.error is None:
                on_complete(p.rows)
        return await self._run(self.proto.list_action(action, **fields), timeout, apply)
