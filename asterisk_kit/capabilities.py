"""The ONE list of capability packages, and the helpers the core uses to walk their descriptors.

Adding a capability: a package asterisk_kit/NAME with `CAPABILITY = Capability(...)` in its
__init__.py (see capability.py), and one line below. Nothing else in the core names it.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, List, Tuple

from .capability import Capability

CAPABILITIES: Tuple[str, ...] = (
    "asterisk_kit.blf",
    "asterisk_kit.dialer",
    "asterisk_kit.comagic",
    "asterisk_kit.beeline",
    "asterisk_kit.nimbox",
)

# The core's own web service (the capabilities declare theirs).
CORE_SERVICES: Tuple[str, ...] = ("asterisk-kit-web",)

_loaded: List[Capability] = []


def all_capabilities() -> List[Capability]:
    """Every descriptor, in list order (imports only the packages' __init__, which stay light)."""
    if not _loaded:
        _loaded.extend(importlib.import_module(p).CAPABILITY for p in CAPABILITIES)
    return list(_loaded)


def configured(cfg) -> List[Capability]:
    """The capabilities whose section (or any [name:INSTANCE] section) is in the config."""
    return [c for c in all_capabilities() if cfg.has(c.name) or cfg.instances(c.name)]


def resolve(target: str) -> Callable[..., Any]:
    """ "package.module:function" -> the function (importing the module now)."""
    mod, _, fn = target.partition(":")
    return getattr(importlib.import_module(mod), fn)


def agi_handlers() -> Dict[str, str]:
    out: Dict[str, str] = {}
    for c in all_capabilities():
        for name, target in c.agi_handlers.items():
            if name in out:
                raise RuntimeError(f"AGI handler {name!r} declared twice ({c.name})")
            out[name] = target
    return out
