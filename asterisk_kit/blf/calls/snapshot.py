"""The list actions whose rows rebuild the call model after a (re)connect, in the order to send them.

Their rows are named like the live events they stand for (ExtensionStatus, DeviceStateChange,
PresenceStateChange, ParkedCall) or are their own (CoreShowChannel, QueueParams, QueueMember,
QueueEntry), so `Model.rebuild(rows)` reads them all in one pass."""
from __future__ import annotations

SNAPSHOT_ACTIONS = (
    "ExtensionStateList",   # hints: which devices (PJSIP/101, Custom:DND101) belong to which key
    "DeviceStateList",      # Custom:DND<ext> states
    "PresenceStateList",    # CustomPresence:<ext>
    "CoreShowChannels",     # calls in progress
    "QueueStatus",          # queues: counters, members, waiting callers
    "ParkedCalls",          # parked calls
)
