"""The call model (blf/calls) inside the daemon: the records it adds to the BLF cache, in two privacy
classes.

Every record is built twice from the model's views, for a viewer without "see numbers" (PRIVATE:
outside numbers dropped by calls/privacy.py while the view is built) and for one with it (FULL). The
private one is the record; what differs for FULL rides along under `full` and is present only when
there is a difference (no outside number, no `full`), so a change still costs one small record. The
web process strips `full` for private viewers before anything is encoded for them (hub.py).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from .calls.model import Model
from .calls.privacy import FULL, Permissions

PRIVATE = Permissions(see_numbers=False)

# the parts of a key's view the page shows besides the hint's state (which stays the Board's own)
KEY_FIELDS = ("dnd", "phone", "calls")


def key_record(model: Model, exten: str) -> Optional[dict]:
    """{dnd, phone, calls[, full: {calls}]} of a key, None when the model has no hint for it."""
    if exten not in model.hints.hint:
        return None
    priv = model.key_view(exten, PRIVATE)
    rec = {k: priv[k] for k in KEY_FIELDS}
    full = model.key_view(exten, FULL)["calls"]
    if full != rec["calls"]:
        rec["full"] = {"calls": full}
    return rec


def queue_record(model: Model, name: str, now: Optional[float] = None) -> Optional[dict]:
    if name not in model.queues.q:
        return None
    rec = model.queue_view(name, PRIVATE, now)
    full = model.queue_view(name, FULL, now)["waiting"]
    if full != rec["waiting"]:
        rec["full"] = {"waiting": full}
    return rec


def parked_record(model: Model, ref: str) -> Optional[dict]:
    if ref not in model.parking.spaces:
        return None
    rec = model.parked_view(ref, PRIVATE)
    rec["ref"] = ref
    full = model.parked_view(ref, FULL)
    extra = {k: full[k] for k in ("number", "name") if full[k] != rec[k]}
    if extra:
        rec["full"] = extra
    return rec


def project(rec: dict, see_numbers: bool) -> dict:
    """A record as one privacy class receives it."""
    extra = rec.get("full")
    if extra is None:
        return rec
    out = {k: v for k, v in rec.items() if k != "full"}
    if see_numbers:
        out.update(extra)
    return out


def all_records(model: Model, extens) -> Tuple[Dict[str, dict], Dict[str, dict], Dict[str, dict]]:
    """Every key (of EXTENS), queue and parked call: after a snapshot rebuild."""
    keys = {x: r for x in extens if (r := key_record(model, x)) is not None}
    queues = {n: r for n in model.queues.q if (r := queue_record(model, n)) is not None}
    parked = {p: r for p in model.parking.spaces if (r := parked_record(model, p)) is not None}
    return keys, queues, parked
