"""The panel's actions: click-to-dial, blind transfer, pickup, hangup, queue pause / unpause.

Each action is checked here, server-side, against the user's permissions and the target's BLF group
before any AMI connection is opened; then audited and rate-limited (web/audit.py), then sent through
the SECOND AMI user ([blf] action_ami_user, manager/asterisk-kit-panel-actions.conf), which only the web app
holds. The kit never sends `Application` in an Originate: click-to-dial is

    Originate Channel=Local/<own ext>@<originate_context> Context=<dial_context> Exten=<target> Priority=1

and the shipped originate context (dialplan/panel.conf.j2) only rings the user's own phone.
Transfer and pickup Redirect the other party's channel (found with CoreShowChannels) to
<target>@<dial_context>: the same for a ringing and a talking call, and it works whether or not the
phone supports attended features.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..ami import AmiClient, AmiError
from ..web import audit
from .states import Groups, parse_groups

# action -> permission it needs
ACTIONS: Dict[str, str] = {"dial": "dial", "transfer": "transfer", "pickup": "pickup", "hangup": "hangup",
                           "pause": "queue", "unpause": "queue"}
TARGET_RE = re.compile(r"[0-9*#+]{1,32}")
EXTEN_RE = re.compile(r"[0-9]{1,20}")
QUEUE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class ActionError(Exception):
    """An answer other than success: HTTP status and a message key (translated by the web layer)."""

    def __init__(self, status: int, key: str, detail: str = ""):
        super().__init__(detail or key)
        self.status, self.key, self.detail = status, key, detail or key


@dataclass
class Request:
    action: str
    target: str = ""
    queue: str = ""

    @classmethod
    def parse(cls, data) -> "Request":
        """From the JSON body; anything unexpected is a 400 (nothing is sent anywhere)."""
        if not isinstance(data, dict):
            raise ActionError(400, "panel.bad_request", "body must be a JSON object")
        action, target, queue = data.get("action"), data.get("target", ""), data.get("queue", "")
        if not isinstance(action, str) or action not in ACTIONS:
            raise ActionError(400, "panel.bad_request", f"action must be one of {', '.join(ACTIONS)}")
        if not isinstance(target, str) or not isinstance(queue, str):
            raise ActionError(400, "panel.bad_request", "target and queue must be strings")
        target, queue = target.strip(), queue.strip()
        if target and not TARGET_RE.fullmatch(target):
            raise ActionError(400, "panel.bad_target", "target: digits, * # + only, at most 32")
        if action in ("dial", "transfer", "pickup") and not target:
            raise ActionError(400, "panel.bad_target", f"{action} needs a target")
        if action == "pickup" and not EXTEN_RE.fullmatch(target):
            raise ActionError(400, "panel.bad_target", "pickup: the target is an extension")
        if queue and not QUEUE_RE.fullmatch(queue):
            raise ActionError(400, "panel.bad_request", "queue: letters, digits, _ . - only")
        return cls(action, target, queue)


class Panel:
    def __init__(self, cfg, log: Optional[logging.Logger] = None):
        self.cfg = cfg
        self.b = cfg["blf"]
        self.log = log or logging.getLogger("asterisk_kit.blf.actions")
        self.groups = Groups(parse_groups(self.b["groups"]))

    @property
    def enabled(self) -> bool:
        return bool(self.b["action_ami_user"])

    def device(self, exten: str) -> str:
        return self.b["phone_channel"].replace("{exten}", exten)

    # ---- permission ----------------------------------------------------------------------------

    def check(self, perms, req: Request) -> None:
        """Raise ActionError(403) unless PERMS allow REQ. Runs before any AMI connection."""
        if perms is None or not perms.has(ACTIONS[req.action]):
            raise ActionError(403, "panel.forbidden", f"no permission {ACTIONS[req.action]!r}")
        own = perms.extension
        if not own:
            raise ActionError(403, "panel.no_extension", "the user has no extension")
        t = req.target
        if req.action == "dial":
            # A typed outside number belongs to no group; an extension of a group the user does not see
            # is refused like a key of that group.
            g = self.groups.of(t)
            if g and not perms.sees_group(g):
                raise ActionError(403, "panel.forbidden_target", f"{t} is in group {g!r}")
        elif req.action in ("transfer", "pickup"):
            self._sees(perms, t)
        elif req.action == "hangup":
            if t and t != own:
                self._sees(perms, t)
        else:       # pause / unpause
            if t and t != own:
                if not perms.has("queue_others"):
                    raise ActionError(403, "panel.forbidden", "no permission 'queue_others'")
                self._sees(perms, t)

    def _sees(self, perms, exten: str) -> None:
        if not perms.sees_group(self.groups.of(exten)):
            raise ActionError(403, "panel.forbidden_target", f"{exten} is outside the user's groups")

    # ---- the whole request -------------------------------------------------------------------------

    def perform(self, conn, perms, data, address: str, client: Optional[AmiClient] = None) -> dict:
        """Parse, audit + rate-limit, check, act. Returns the JSON answer; raises ActionError."""
        user = perms.name if perms is not None else "?"
        try:
            req = Request.parse(data)
        except ActionError as e:
            row, _ = audit.begin(conn, user, str(data.get("action", "?") if isinstance(data, dict) else "?"),
                                 "", address, 10 ** 9)
            audit.finish(conn, row, "invalid", e.detail)
            raise
        if not self.enabled:
            raise ActionError(503, "panel.disabled", "[blf] action_ami_user is not set")
        row, allowed = audit.begin(conn, user, req.action, req.target, address, self.b["actions_per_minute"])
        if not allowed:
            self.log.warning("panel: %s %s %s by %r refused: more than %d actions a minute", req.action,
                             req.target, req.queue, user, self.b["actions_per_minute"])
            raise ActionError(429, "panel.rate_limited", f"more than {self.b['actions_per_minute']} actions a minute")
        try:
            self.check(perms, req)
        except ActionError as e:
            audit.finish(conn, row, "refused", e.detail)
            self.log.warning("panel: %s %s by %r refused: %s", req.action, req.target, user, e.detail)
            raise
        try:
            result = self.execute(perms, req, client)
        except ActionError as e:
            audit.finish(conn, row, "failed", e.detail)
            self.log.info("panel: %s %s by %r failed: %s", req.action, req.target, user, e.detail)
            raise
        except AmiError as e:
            audit.finish(conn, row, "failed", str(e))
            self.log.error("panel: %s %s by %r: AMI: %s", req.action, req.target, user, e)
            raise ActionError(502, "panel.ami_failed", str(e)) from None
        audit.finish(conn, row, "ok", result.get("detail", ""))
        self.log.info("panel: %s %s by %r: %s", req.action, req.target, user, result.get("detail", "ok"))
        return {"ok": True, "action": req.action, "target": req.target, "audit": row}

    def client(self) -> AmiClient:
        a = self.cfg["asterisk"]
        return AmiClient(a["ami_host"], a["ami_port"], self.b["action_ami_user"], self.b["action_ami_secret"],
                         a["ami_timeout"])

    # ---- the actions -------------------------------------------------------------------------------

    def execute(self, perms, req: Request, client: Optional[AmiClient] = None) -> dict:
        own = perms.extension
        with (client or self.client()) as ami:
            if req.action == "dial":
                b = self.b
                ami.action("Originate", Channel=f"Local/{own}@{b['originate_context']}", Context=b["dial_context"],
                           Exten=req.target, Priority="1", CallerID=f'"{req.target}" <{own}>',
                           Timeout=str(b["ring_seconds"] * 1000), Async="true")
                return {"detail": f"ringing {own}, then {req.target}"}
            if req.action in ("pause", "unpause"):
                who = req.target or own
                fields = {"Interface": self.b["queue_interface"].replace("{exten}", who),
                          "Paused": "true" if req.action == "pause" else "false",
                          "Reason": f"asterisk-kit panel {perms.name}"[:80]}
                if req.queue:
                    fields["Queue"] = req.queue
                ami.action("QueuePause", **fields)
                return {"detail": f"{fields['Interface']} {req.action}d"}
            _, rows = ami.list_action("CoreShowChannels")
            if req.action == "hangup":
                mine = self.channels_of(rows, req.target or own)
                if not mine:
                    raise ActionError(409, "panel.no_call", f"no call on {req.target or own}")
                for ch in mine:
                    ami.action("Hangup", Channel=ch["Channel"])
                return {"detail": "hung up " + ", ".join(ch["Channel"] for ch in mine)}
            if req.action == "transfer":
                mine = self.channels_of(rows, own)
                if not mine:
                    raise ActionError(409, "panel.no_call", f"no call on {own}")
                # A talking call first, else a ringing one.
                mine.sort(key=lambda ch: 0 if ch.get("BridgeId") else 1)
                party = self.party(rows, mine[0])
                dest = req.target
            else:   # pickup
                ringing = [ch for ch in self.channels_of(rows, req.target) if ch.get("ChannelStateDesc") == "Ringing"]
                if not ringing:
                    raise ActionError(409, "panel.not_ringing", f"{req.target} is not ringing")
                party = self.party(rows, ringing[0])
                dest = own
            ami.action("Redirect", Channel=party, Context=self.b["dial_context"], Exten=dest, Priority="1")
            return {"detail": f"{party} -> {dest}@{self.b['dial_context']}"}

    def channels_of(self, rows: List[dict], exten: str) -> List[dict]:
        prefix = self.device(exten) + "-"
        return [r for r in rows if r.get("Channel", "").startswith(prefix)]

    @staticmethod
    def party(rows: List[dict], ch: dict) -> str:
        """The channel on the other side of CH: its bridge peer when talking, else the call's originator
        (same Linkedid, e.g. the caller still in Dial while CH rings). Local channels are skipped: moving
        the real channel moves the whole call."""
        def real(r):
            return r.get("Channel") != ch.get("Channel") and not r.get("Channel", "").startswith("Local/")
        bridge = ch.get("BridgeId")
        if bridge:
            peers = [r for r in rows if r.get("BridgeId") == bridge and real(r)]
            if peers:
                return peers[0]["Channel"]
        same = [r for r in rows if r.get("Linkedid") and r.get("Linkedid") == ch.get("Linkedid") and real(r)]
        same.sort(key=lambda r: 0 if r.get("Uniqueid") == r.get("Linkedid") else 1)
        if not same:
            raise ActionError(409, "panel.no_call", f"no other party for {ch.get('Channel')}")
        return same[0]["Channel"]
