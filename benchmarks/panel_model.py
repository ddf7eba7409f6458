"""Operator panel call model: CPU per applied AMI event at 500 and 2 000 extensions (alone, and
with the changed views built for a user without "see numbers"), next to a bare
baseline (one dict update per event) measured in the same run.

The events are the real ones recorded from the testbed (tests/data/ami/panel.bin: an outside caller,
blind transfer, internal call, DND, presence, queue, parking, as the panel's filtered AMI user gets
them), copied once per group of three extensions with their extension numbers and Uniqueids rewritten,
so the model holds N hints and every copy's calls at once.

`.venv/bin/python benchmarks/panel_model.py [EXTENSIONS...]`   (default 500 2000)
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asterisk_kit.amiproto import Decoder  # noqa: E402
from asterisk_kit.blf.calls.model import Model  # noqa: E402
from asterisk_kit.blf.calls.privacy import Permissions  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests/data/ami/panel.bin"
IDS = ("Uniqueid", "Linkedid", "DestUniqueid", "DestLinkedid", "ParkeeUniqueid", "ParkeeLinkedid")
EXT = re.compile(r"(?<![\d.])10([123])(?!\d)")


def recorded():
    msgs = Decoder().feed(DATA.read_bytes())
    hints = [m for m in msgs if m.get("Event") == "ExtensionStatus" and "ActionID" in m][:3]
    events = [m for m in msgs if "Event" in m and "ActionID" not in m]
    return hints, events


def copy(msg: Dict[str, str], i: int) -> Dict[str, str]:
    base = 1000 + 3 * i
    out = {}
    for k, v in msg.items():
        if k in IDS:
            out[k] = f"{i}-{v}"
        else:
            out[k] = EXT.sub(lambda m: str(base + int(m.group(1)) - 1), v)
    return out


def run(n_ext: int, hints, events) -> None:
    copies = max(1, n_ext // 3)
    rows = [copy(h, i) for i in range(copies) for h in hints]
    stream: List[Dict[str, str]] = [copy(e, i) for i in range(copies) for e in events]

    model = Model()
    model.rebuild(rows, 0.0)
    t0 = time.process_time()
    for ev in stream:
        model.apply(ev)
    kit = time.process_time() - t0

    # the same, plus building each changed thing's view for a user without "see numbers" (per-change deltas)
    model = Model()
    model.rebuild(rows, 0.0)
    private = Permissions(see_numbers=False)
    t0 = time.process_time()
    for ev in stream:
        for change in model.apply(ev):
            model.view_of(change, private)
    with_views = time.process_time() - t0

    state: Dict[str, Dict[str, str]] = {}
    t0 = time.process_time()
    for ev in stream:
        state[ev.get("Uniqueid") or ev.get("Device") or ev.get("Queue") or ev.get("Event", "")] = ev
    bare = time.process_time() - t0

    n = len(stream)
    print(f"{len(model.hints.hint):5d} extensions, {n:7d} events: model {kit / n * 1e6:6.2f} µs/event, "
          f"with views {with_views / n * 1e6:6.2f} µs/event, "
          f"bare dict update {bare / n * 1e6:5.2f} µs/event, ratio {kit / bare:5.1f}x "
          f"(budget 1000 µs/event: {'ok' if kit / n < 1e-3 else 'OVER'})")


def main(argv: List[str]) -> None:
    hints, events = recorded()
    print(f"recorded stream: {len(events)} events per 3 extensions")
    for n in [int(a) for a in argv] or [500, 2000]:
        run(n, hints, events)


if __name__ == "__main__":
    main(sys.argv[1:])
