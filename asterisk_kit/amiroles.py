"""AMI users per role, each with the fewest classes that work, and the doctor's check of each.

Measured on the testbed's Asterisk 22 with one user per write class (`python -m testbed.amiclasses`):
an action is allowed when the user has ANY of its classes; Ping, Logoff, Login and Challenge need
none. The roles and their shipped manager.conf blocks (folder manager/):

  role      config user                   actions                              write       read
  default   [asterisk] ami_user           Command (install --reload, doctor)   command     -
            (Command only with [dialer] or [nimbox], whose dialplan it reloads and checks)
  dialer    [dialer] ami_user, else ^     CoreShowChannels (pacing)             reporting   -
  blf       [blf] ami_user, else ^        ExtensionStateList, PresenceStateList reporting   call,system
"""
from __future__ import annotations

from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

from .resources import shipped

# action -> write classes that allow it (any one suffices), as measured on Asterisk 22
ACTION_CLASSES: Dict[str, Tuple[str, ...]] = {
    "Ping": (), "Logoff": (), "Login": (), "Challenge": (),
    "Command": ("command",),
    "CoreSettings": ("system", "reporting"),
    "CoreShowChannels": ("system", "reporting"),
    "ExtensionStateList": ("call", "reporting"),
    "PresenceStateList": ("call", "reporting"),
    "ShowDialPlan": ("config", "reporting"),
    "Reload": ("system", "config"),
}
# the class the kit asks for: the one that allows the least else (`reporting` only reads status)
LEAST = {"Command": "command", "CoreSettings": "reporting", "CoreShowChannels": "reporting",
         "ExtensionStateList": "reporting", "PresenceStateList": "reporting", "ShowDialPlan": "reporting",
         "Reload": "config"}


class Probe(NamedTuple):
    action: str
    is_list: bool
    fields: Dict[str, str]


class Role(NamedTuple):
    name: str
    section: Optional[str]      # config section that may name its own ami_user; None: [asterisk]
    snippet: str                # file in manager/
    what: str
    probes: List[Probe]


ROLES = [
    Role("default", None, "asterisk-kit.conf", "install --reload and doctor",
         [Probe("Command", False, {"Command": "core show version"})]),
    Role("dialer", "dialer", "asterisk-kit-dialer.conf", "the autodialer's pacing",
         [Probe("CoreShowChannels", True, {})]),
    Role("blf", "blf", "asterisk-kit-blf.conf", "the BLF daemon",
         [Probe("ExtensionStateList", True, {}), Probe("PresenceStateList", True, {})]),
]


def snippet(role: Role) -> str:
    """The shipped manager.conf block of a role."""
    return (shipped("manager") / role.snippet).read_text()


def needed(action: str) -> str:
    """How to grant an action, for messages: e.g. 'write = reporting'."""
    cls = LEAST.get(action)
    return f"write = {cls}" if cls else "no class"


def refusal_hint(user: str, action: str) -> str:
    return f"AMI user {user!r} may not run {action}: add `{needed(action)}` to [{user}] in manager_custom.conf"


def probes_of(cfg, role: Role) -> List[Probe]:
    """The default user needs `Command` only where the kit sends it: `install --reload` and the
    dialplan checks of capabilities with a dialplan ([dialer], [nimbox]). A BLF-only kit may use the
    BLF user as its default one."""
    if role.section is None and not (cfg.has("dialer") or cfg.has("nimbox")):
        return []
    return role.probes


def _version(ami) -> str:
    from .ami import AmiActionError
    try:
        return " ".join(ami.command("core show version").split()[:2])
    except AmiActionError:
        pass
    try:
        return "Asterisk " + ami.action("CoreSettings").get("AsteriskVersion", "?")
    except AmiActionError:
        return ""


def check_role(cfg, role: Role) -> Tuple[bool, str]:
    """Log in with the role's user and try each of its actions; a refusal names the class missing."""
    from .ami import AmiActionError, AmiAuthError, AmiClient, AmiError, ami_credentials
    user, _ = ami_credentials(cfg, role.section)
    a = cfg["asterisk"]
    probes = probes_of(cfg, role)
    try:
        with AmiClient.from_config(cfg, role.section) as ami:
            for p in probes:
                try:
                    if p.is_list:
                        ami.list_action(p.action, **p.fields)
                    else:
                        ami.action(p.action, **p.fields)
                except AmiActionError as e:
                    if e.permission_denied:
                        return False, (f"{refusal_hint(user, p.action)} (Asterisk said: {e.message}; "
                                       f"see manager/{role.snippet})")
                    raise
            version = _version(ami) if role.section is None else ""
        return True, (f"logged in as {user} at {a['ami_host']}:{a['ami_port']}"
                      + (f"; may run {', '.join(p.action for p in probes)}" if probes else "")
                      + (f" ({version})" if version else ""))
    except AmiAuthError as e:
        return False, str(e)
    except AmiError as e:
        return False, f"{user} at {a['ami_host']}:{a['ami_port']}: {e}"


def doctor_checks(cfg) -> Iterator[Tuple[str, bool, str]]:
    """One line per role in use: the default user always, the dialer's and BLF's when configured."""
    for role in ROLES:
        if role.section is None or cfg.has(role.section):
            ok, text = check_role(cfg, role)
            yield ("ami" if role.section is None else f"ami {role.name}"), ok, text
