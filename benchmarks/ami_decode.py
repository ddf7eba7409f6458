"""AMI protocol core decoding speed: the recorded event stream (tests/data/ami/events.bin, Asterisk 22
call events with Cyrillic names) repeated, fed in 64 KiB reads to AmiProtocol, next to a bare baseline
(split the same bytes on blank lines and decode each block into a dict) in the same run.

`.venv/bin/python benchmarks/ami_decode.py [REPEATS]`
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asterisk_kit.amiproto import AmiProtocol  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests/data/ami/events.bin"


def main(repeats: int = 2000) -> None:
    raw = DATA.read_bytes()
    banner, _, body = raw.partition(b"\r\n")
    stream = banner + b"\r\n" + body * repeats
    n_msgs = body.count(b"\r\n\r\n") * repeats

    def kit() -> int:
        seen = []
        proto = AmiProtocol(seen.append)
        for i in range(0, len(stream), 65536):
            proto.receive(stream[i:i + 65536])
        return len(seen)

    def baseline() -> int:
        out = []
        for block in stream.split(b"\r\n\r\n"):
            msg = {}
            for line in block.decode("utf-8", "replace").split("\r\n"):
                k, _, v = line.partition(":")
                msg.setdefault(k.strip(), v.strip())
            out.append(msg)
        return len(out)

    for name, fn in (("baseline split+dict", baseline), ("kit AmiProtocol", kit)):
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        print(f"{name:22} {n_msgs / dt:12,.0f} messages/s  {len(stream) / dt / 1e6:7.1f} MB/s")
        if name.startswith("baseline"):
            base = dt
    print(f"ratio kit/baseline time: {dt / base:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
