"""The messages staff can choose for a campaign (the campaign form's "message" and "IVR prompt").

Interface used by the campaign pages: `choices(conn, cfg)` -> [(value, label)], where value is what
the campaign stores in its `sound` / `ivr_prompt` setting (a Playback name, checked by
settings._sound). The sounds page (uploads, text-to-speech) extends the list with its messages.
"""
from __future__ import annotations

from typing import List, Tuple


def choices(conn, cfg) -> List[Tuple[str, str]]:
    d = cfg["dialer"]
    out: List[Tuple[str, str]] = []
    for value in (d["sound"], d["ivr_prompt"]):
        if value not in [v for v, _ in out]:
            out.append((value, value))
    return out
