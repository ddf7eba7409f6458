"""Which devices and presence providers belong to which panel key, read from the hints.

A FreePBX hint is `PJSIP/101&Custom:DND101,CustomPresence:101`: devices joined by `&`, then after
the comma the presence provider. The ExtensionStatus of such a hint is the AGGREGATE of all its
devices, so a DND set with `devstate change Custom:DND101 BUSY` makes the key "Busy" exactly as a
call would; the panel tells them apart by following each device on its own (DeviceStateChange).
"""
from __future__ import annotations

from typing import Dict, List, Set, Tuple

# Device states that mean "DND is on" for a DND device (FreePBX sets BUSY; anything but idle counts).
DND_OFF = frozenset({"NOT_INUSE", "UNKNOWN", "INVALID", "UNAVAILABLE", ""})


def parse_hint(hint: str) -> Tuple[List[str], str]:
    """(devices, presence provider) of a hint."""
    devices, _, presence = hint.partition(",")
    return [d.strip() for d in devices.split("&") if d.strip()], presence.strip()


def channel_device(channel: str) -> str:
    """PJSIP/101-0000002a -> PJSIP/101 (Asterisk appends `-<sequence>` to the device's name)."""
    base, sep, _ = channel.rpartition("-")
    return base if sep else channel


class HintMap:
    """device -> keys, presence provider -> keys, key -> (phone devices, DND devices). Updated one
    hint at a time (O(devices of that hint)), so an ExtensionStatus costs no scan."""

    def __init__(self, dnd_prefix: str = "Custom:DND"):
        self.dnd_prefix = dnd_prefix
        self.hint: Dict[str, str] = {}
        self.phones: Dict[str, List[str]] = {}
        self.dnd: Dict[str, List[str]] = {}
        self.by_device: Dict[str, Set[str]] = {}
        self.by_presence: Dict[str, Set[str]] = {}
        self.presence_of: Dict[str, str] = {}

    def set(self, key: str, hint: str) -> bool:
        """Map `key` to `hint`; False when nothing changed."""
        if self.hint.get(key) == hint:
            return False
        self.drop(key)
        devices, presence = parse_hint(hint)
        self.hint[key] = hint
        self.phones[key] = [d for d in devices if not d.startswith(self.dnd_prefix)]
        self.dnd[key] = [d for d in devices if d.startswith(self.dnd_prefix)]
        for d in devices:
            self.by_device.setdefault(d, set()).add(key)
        if presence:
            self.presence_of[key] = presence
            self.by_presence.setdefault(presence, set()).add(key)
        return True

    def drop(self, key: str) -> None:
        hint = self.hint.pop(key, None)
        if hint is None:
            return
        for d in self.phones.pop(key, []) + self.dnd.pop(key, []):
            ks = self.by_device.get(d)
            if ks is not None:
                ks.discard(key)
                if not ks:
                    del self.by_device[d]
        p = self.presence_of.pop(key, "")
        if p and p in self.by_presence:
            self.by_presence[p].discard(key)
            if not self.by_presence[p]:
                del self.by_presence[p]

    def keys_of_device(self, device: str) -> Set[str]:
        return self.by_device.get(device, _EMPTY)


_EMPTY: Set[str] = frozenset()  # type: ignore[assignment]
