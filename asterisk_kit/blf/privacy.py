"""Privacy: other parties' numbers leave the server only for users with the `numbers` permission.

`redact(record, perms)` returns a copy of any per-key dict (a BLF record, a call, a queue entry, a
parked call; nested dicts and lists included) in which every field naming another party's number is
replaced by None. The key's own extension (`exten`) and names are kept: they are the panel's tiles. The
read side names such fields from PARTY_FIELDS (or ending in `_number` / `_num`); every JSON answer of
the panel's actions passes through it.
"""
from __future__ import annotations

from typing import Any

# Fields that carry another party's number (caller, callee, connected line, transfer targets).
PARTY_FIELDS = frozenset({
    "callerid", "callerid_num", "caller", "caller_num", "callee", "connected", "connected_num",
    "connectedline", "connectedlinenum", "peer", "peer_num", "number", "numbers", "other", "target",
    "dialed", "exten_dialed", "src", "dst", "from", "to", "calleridnum",
})


def is_party_field(key: str) -> bool:
    k = key.lower()
    return k in PARTY_FIELDS or k.endswith("_number") or k.endswith("_num")


def redact(record: Any, perms) -> Any:
    """RECORD unchanged (same object) with `numbers`, else a copy without other parties' numbers."""
    if perms is not None and perms.has("numbers"):
        return record
    return _strip(record)


def _strip(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: (None if isinstance(k, str) and is_party_field(k) else _strip(x)) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_strip(x) for x in v]
    return v
