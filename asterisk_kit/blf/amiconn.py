"""A small asyncio AMI connection for the BLF daemon: login, actions with list answers, events, ping.

Why not panoramisk (the library the issue names): tried, and it gets in the way of exactly what this
daemon must do well. Its Manager reconnects on its own fixed 2 s timer from inside connection_lost
(no backoff, no hook to resync first) and re-sends unanswered actions after a reconnect; its pinger
sends Ping but never checks the answer, so a silently dead link (half-open TCP) is never noticed; a
failed login just leaves `authenticated = False`; and it decodes every TCP chunk on its own with
errors='ignore', which drops UTF-8 characters split across reads. This class is ~120 lines of
asyncio streams with none of those problems; the daemon owns the reconnect loop.
"""
from __future__ import annotations

import asyncio
import itertools
from typing import Callable, Dict, List, Optional

Message = Dict[str, str]


class AmiLost(Exception):
    """Connection refused, closed, timed out or login refused."""


def _check(v: str) -> str:
    if "\r" in v or "\n" in v:
        raise ValueError("AMI values cannot contain line breaks")
    return v


class AmiConnection:
    def __init__(self, host: str, port: int, user: str, secret: str, timeout: float,
                 on_event: Callable[[Message], None]):
        self.host, self.port, self.user, self.secret, self.timeout = host, port, user, secret, timeout
        self.on_event = on_event
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None
        self._ids = itertools.count(1)
        self._pending: Dict[str, asyncio.Future] = {}
        self._lists: Dict[str, List[Message]] = {}
        self._on_complete: Dict[str, Callable[[List[Message]], None]] = {}
        self._reader_task: Optional[asyncio.Task] = None
        self.closed = asyncio.Event()

    async def connect(self) -> str:
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, limit=1 << 20), self.timeout)
            banner = (await asyncio.wait_for(self.reader.readline(), self.timeout)).decode("utf-8", "replace")
        except (OSError, asyncio.TimeoutError) as e:
            await self.close()
            raise AmiLost(f"cannot connect to AMI at {self.host}:{self.port}: {e or type(e).__name__}") from None
        if not banner.startswith("Asterisk Call Manager"):
            await self.close()
            raise AmiLost(f"{self.host}:{self.port} is not AMI (said {banner[:60]!r})")
        self._reader_task = asyncio.create_task(self._read_loop())
        resp = await self.action("Login", Username=self.user, Secret=self.secret, Events="on")
        if resp.get("Response") != "Success":
            await self.close()
            raise AmiLost(f"AMI login as {self.user!r} refused: {resp.get('Message', 'no reason given')}")
        return banner.strip()

    async def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except Exception:
                pass
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
        self._fail_pending()
        self.closed.set()

    def _fail_pending(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(AmiLost("AMI connection lost"))
        self._pending.clear()

    async def _read_loop(self) -> None:
        assert self.reader is not None
        try:
            while True:
                block = await self.reader.readuntil(b"\r\n\r\n")
                self._dispatch(_parse(block))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            self._fail_pending()
            self.closed.set()

    def _dispatch(self, msg: Message) -> None:
        aid = msg.get("ActionID", "")
        if aid in self._pending:
            fut = self._pending[aid]
            if aid in self._lists:
                if "Response" in msg:
                    if msg["Response"] != "Success":
                        self._pending.pop(aid)
                        self._lists.pop(aid)
                        fut.set_exception(AmiLost(f"AMI refused the list action: {msg.get('Message', '')}"))
                    return
                if msg.get("EventList") == "Complete" or msg.get("Event", "").endswith("Complete"):
                    self._pending.pop(aid)
                    rows = self._lists.pop(aid)
                    done = self._on_complete.pop(aid, None)
                    if done is not None:
                        # applied now, before any event read after it (the wire's order is the truth)
                        done(rows)
                    fut.set_result(rows)
                else:
                    self._lists[aid].append(msg)
                return
            if "Response" in msg:
                self._pending.pop(aid)
                fut.set_result(msg)
                return
        if "Event" in msg:
            self.on_event(msg)

    def _send(self, action: str, fields: Dict[str, str]) -> str:
        if self.writer is None or self.closed.is_set():
            raise AmiLost("AMI not connected")
        aid = f"akit-blf-{next(self._ids)}"
        lines = [f"Action: {_check(action)}", f"ActionID: {aid}"]
        lines += [f"{_check(k)}: {_check(str(v))}" for k, v in fields.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        return aid

    async def action(self, action: str, timeout: Optional[float] = None, **fields) -> Message:
        aid = self._send(action, fields)
        fut = self._pending[aid] = asyncio.get_running_loop().create_future()
        return await self._wait(aid, fut, timeout)

    async def list_action(self, action: str, timeout: Optional[float] = None,
                          on_complete: Optional[Callable[[List[Message]], None]] = None, **fields) -> List[Message]:
        aid = self._send(action, fields)
        self._lists[aid] = []
        if on_complete is not None:
            self._on_complete[aid] = on_complete
        fut = self._pending[aid] = asyncio.get_running_loop().create_future()
        return await self._wait(aid, fut, timeout)

    async def _wait(self, aid: str, fut: asyncio.Future, timeout: Optional[float]):
        try:
            return await asyncio.wait_for(fut, timeout or self.timeout)
        except asyncio.TimeoutError:
            self._pending.pop(aid, None)
            self._lists.pop(aid, None)
            self._on_complete.pop(aid, None)
            raise AmiLost(f"AMI did not answer {aid} within {timeout or self.timeout:g} s") from None


def _parse(block: bytes) -> Message:
    msg: Message = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        k, sep, v = line.partition(":")
        if sep:
            msg.setdefault(k.strip(), v.strip())
    return msg
