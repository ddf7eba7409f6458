"""`asterisk-kit blf run`: ONE AMI connection -> the Board -> memcached.

On connect: login, wait for FullyBooted (the dialplan and its hints are loaded), take the full
ExtensionStateList snapshot, then follow ExtensionStatus / PresenceStatus / PresenceStateChange.
A Ping every [blf] ping_seconds must be answered within [asterisk] ami_timeout, so a silently dead
link is noticed too. AMI lost: every state is marked unknown at once, reconnection with exponential
backoff (1 s doubling up to [blf] reconnect_max_seconds), full resync after. A `Reload` event
(dialplan reload, fwconsole reload) triggers a resync so new hints appear.
SIGTERM / SIGINT: log off, mark the cache stopped, exit 0. SIGHUP: re-read the config.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Callable, Optional

from ..ami import ami_credentials
from ..amiroles import refusal_hint
from . import panel
from .amiconn import AmiActionError, AmiAuthError, AmiConnection, AmiLost
from .board import Board
from .cache import CacheWriter
from .calls.model import Model
from .calls.snapshot import SNAPSHOT_ACTIONS
from .names import NameSource
from .states import Groups, Selection, parse_groups

if TYPE_CHECKING:
    from ..config import Config


def board_parts(cfg):
    b = cfg["blf"]
    return Selection.from_section(b), Groups(parse_groups(b["groups"]))


class Daemon:
    def __init__(self, cfg, log: logging.Logger, reload_config: Optional[Callable[[], Config]] = None):
        self.cfg = cfg
        self.log = log
        self.reload_config = reload_config
        sel, groups = board_parts(cfg)
        self.board = Board(sel, groups)
        self.names = NameSource(cfg, log)
        self.writer = CacheWriter(self.board, self._mc_factory(cfg), log, heartbeat=cfg["blf"]["heartbeat_seconds"])
        self.conn: Optional[AmiConnection] = None
        self.connections = 0
        # the operator panel's call model ([blf] calls): None = state-only BLF
        self.model: Optional[Model] = Model(cfg["blf"]["contexts"]) if cfg["blf"]["calls"] else None
        self.model_buffer: Optional[list] = None    # events read while the snapshot lists run
        self.refused: dict = {}                     # snapshot list -> refusal already logged

    @staticmethod
    def _mc_factory(cfg):
        from ..memcache import client_from_config
        return lambda: client_from_config(cfg, ignore_exc=False)

    # ---- life cycle ----
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.resync = asyncio.Event()
        self.reconnect = asyncio.Event()
        self.names_now = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        self.board.set_names(await asyncio.to_thread(self.names.load))
        self.writer.start()
        tasks = [asyncio.create_task(self._ami_loop()), asyncio.create_task(self._names_loop())]
        await self.stopping.wait()
        self.log.info("stopping")
        conn = self.conn
        if conn is not None:
            try:
                await conn.action("Logoff", timeout=2)
            except Exception:
                pass
            await conn.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.board.stopped()
        await asyncio.to_thread(self.writer.stop)
        self.names.close()
        self.log.info("stopped")
        return 0

    async def reload(self) -> None:
        if self.reload_config is None:
            return
        try:
            new = self.reload_config()
            sel, groups = board_parts(new)
        except Exception as e:
            self.log.error("SIGHUP: config not reloaded, keeping the old one: %s", e)
            return
        old, self.cfg = self.cfg, new
        self.log.info("SIGHUP: config reloaded")
        self.board.reconfigure(sel, groups)
        self.names.configure(new)
        self.names_now.set()
        if old.get_section("memcached") != new.get_section("memcached"):
            self.writer.reconnect(self._mc_factory(new))
        if old["asterisk"] != new["asterisk"] or ami_credentials(old, "blf") != ami_credentials(new, "blf"):
            self.reconnect.set()
        else:
            self.resync.set()

    # ---- names ----
    async def _names_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.names_now.wait(), self.cfg["blf"]["names_refresh_seconds"])
            except asyncio.TimeoutError:
                pass
            self.names_now.clear()
            self.board.set_names(await asyncio.to_thread(self.names.load))

    # ---- AMI ----
    async def _ami_loop(self) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            a = self.cfg["asterisk"]
            user, secret = ami_credentials(self.cfg, "blf")     # [blf] ami_user, else [asterisk]'s
            self.reconnect.clear()
            self.booted = asyncio.Event()
            conn = AmiConnection(a["ami_host"], a["ami_port"], user, secret, a["ami_timeout"], self._on_event)
            self.synced = False
            try:
                banner = await conn.connect()
                self.conn = conn
                self.connections += 1
                self.log.info("AMI connected to %s:%s as %s (%s)", a["ami_host"], a["ami_port"], user, banner)
                await self._session(conn)
            except AmiLost as e:
                self.log.warning("AMI: %s", e)
            except AmiAuthError as e:
                self.log.error("AMI: %s", e)
            except AmiActionError as e:
                # the AMI user lacks a class: say which, then retry (manager reload fixes it without a restart)
                hint = f"; {refusal_hint(user, e.action)}" if e.permission_denied else ""
                self.log.error("AMI: %s%s", e, hint)
            except Exception:
                self.log.exception("AMI session failed")
            finally:
                self.conn = None
                await conn.close()
            if self.stopping.is_set():
                return
            if self.board.ami != "down":
                self.board.ami_lost()
                self.log.warning("AMI lost: states marked unknown")
            if self.synced:
                delay = 1.0     # it worked until now: retry soon, then back off
            self.log.info("AMI: reconnecting in %.0f s", delay)
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, float(self.cfg["blf"]["reconnect_max_seconds"]))

    async def _session(self, conn: AmiConnection) -> None:
        """Snapshot, then follow events until the link dies, a reconnect is asked, or we stop."""
        try:
            await asyncio.wait_for(self.booted.wait(), 15)
        except asyncio.TimeoutError:
            self.log.info("AMI: no FullyBooted event within 15 s (user without read=system?); going on")
        await self._snapshot(conn)
        ping = self.cfg["blf"]["ping_seconds"]
        loop = asyncio.get_running_loop()
        next_resync = loop.time() + self.cfg["blf"]["resync_seconds"]
        while True:
            if loop.time() >= next_resync:
                # `dialplan reload` adding a hint sends no event at all: look again now and then
                self.resync.set()
            if self.resync.is_set():
                next_resync = loop.time() + self.cfg["blf"]["resync_seconds"]
            waits = [asyncio.ensure_future(e.wait()) for e in (self.stopping, self.resync, self.reconnect, conn.closed)]
            done, pending = await asyncio.wait(waits, timeout=ping, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()
            if self.stopping.is_set() or self.reconnect.is_set():
                return
            if conn.closed.is_set():
                raise AmiLost("AMI closed the connection")
            if self.resync.is_set():
                self.resync.clear()
                await self._snapshot(conn)
                continue
            await conn.action("Ping")       # a refusal raises AmiActionError, no answer AmiLost

    async def _snapshot(self, conn: AmiConnection) -> None:
        if self.model is not None:
            self.model_buffer = []      # events met meanwhile are applied after the rebuild, in order
        try:
            rows = await conn.list_action("ExtensionStateList", timeout=60, on_complete=self.board.snapshot)
            self.synced = True
            self.log.info("AMI snapshot: %d hints, %d shown", len(rows), len(self.board.ext))
            panel_rows = list(rows)
            try:
                await conn.list_action("PresenceStateList", timeout=30, on_complete=self._presence_rows)
            except AmiLost as e:
                self.log.debug("PresenceStateList: %s", e)
            except AmiActionError as e:
                self.log.warning("PresenceStateList: %s (presence not shown until the next snapshot)", e)
            if self.model is not None:
                await self._panel_snapshot(conn, panel_rows)
        finally:
            self.model_buffer = None

    async def _panel_snapshot(self, conn: AmiConnection, rows: list) -> None:
        """The call model's lists (calls/snapshot.py), then rebuild: channels, queues and parked calls are
        right after every (re)connect, not only after the next event."""
        assert self.model is not None
        parking = True
        for action in SNAPSHOT_ACTIONS:
            if action == "ExtensionStateList":
                continue
            try:
                rows += await conn.list_action(action, timeout=60)
                self.refused.pop(action, None)
            except AmiActionError as e:
                # ParkedCalls needs write=call; without it parked calls are shown as unavailable
                if action == "ParkedCalls":
                    parking = False
                if action not in self.refused:
                    self.log.warning("AMI %s refused (%s): %s", action, e,
                                     "parked calls shown as unavailable" if action == "ParkedCalls"
                                     else "the panel goes on without it until the next snapshot")
                self.refused[action] = True
        self.model.rebuild(rows)
        keys, queues, parked = panel.all_records(self.model, list(self.board.ext))
        self.board.panel_update(dict(keys), dict(queues), dict(parked), replace=True, parking=parking)
        buffered, self.model_buffer = self.model_buffer or [], None
        for ev in buffered:
            self._model_apply(ev)
        self.log.info("panel snapshot: %d channels, %d queues, %d parked calls", len(self.model.calls),
                      len(queues), len(parked))

    def _model_apply(self, ev) -> None:
        assert self.model is not None
        changes = self.model.apply(ev)
        if not changes:
            return
        keys: dict = {}
        queues: dict = {}
        parked: dict = {}
        for what, ref in changes:
            if what == "key":
                keys[ref] = panel.key_record(self.model, ref)
            elif what == "queue":
                queues[ref] = panel.queue_record(self.model, ref)
            else:
                parked[ref] = panel.parked_record(self.model, ref)
        self.board.panel_update(keys, queues, parked)

    def _presence_rows(self, rows) -> None:
        for r in rows:
            self.board.presence_of_provider(r.get("Presentity", ""), r.get("Status", ""), r.get("Message", ""))

    def _on_event(self, ev) -> None:
        name = ev.get("Event", "")
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("AMI event %s %s", name, {k: v for k, v in ev.items() if k != "Event"})
        if name == "ExtensionStatus":
            what = self.board.status(ev)
            if (what in ("new", "same") or ev.get("Status", "").startswith("-")) and not self._resync_soon:
                # A `dialplan reload` sends ExtensionStatus for every hint, changed or not, and new ones,
                # but nothing for removed hints: take a new snapshot once the reload has settled.
                self._resync_soon = asyncio.get_running_loop().call_later(1.0, self._resync_now)
        elif name == "PresenceStatus":
            self.board.presence(ev.get("Exten", ""), ev.get("Context", ""), ev.get("Status", ""), ev.get("Message", ""))
        elif name == "PresenceStateChange":
            self.board.presence_of_provider(ev.get("Presentity", ""), ev.get("Status", ""), ev.get("Message", ""))
        elif name == "FullyBooted":
            self.booted.set()
        elif name == "Shutdown":
            # Asterisk is going down: say so now rather than when the socket closes
            self.log.warning("AMI: Asterisk is shutting down: states marked unknown")
            self.board.ami_lost()
        elif name == "Reload":
            self.resync.set()
        if self.model is not None:
            if self.model_buffer is not None:
                self.model_buffer.append(ev)
            else:
                self._model_apply(ev)

    _resync_soon: Optional[asyncio.TimerHandle] = None

    def _resync_now(self) -> None:
        self._resync_soon = None
        self.resync.set()


def run(cfg, log: logging.Logger, reload_config=None) -> int:
    return asyncio.run(Daemon(cfg, log, reload_config).run())
