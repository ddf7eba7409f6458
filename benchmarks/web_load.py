"""Web server under load: 200 open BLF live viewers (Server-Sent Events) plus 50 concurrent page loads.

Real parts: a private memcached and `asterisk-kit web` (cheroot) as a subprocess with the BLF page on
([blf] max_viewers = 200, wall-screen network 127.0.0.0/8 so no login is needed). The viewers are plain
sockets held open in one selector thread (what a browser's EventSource does on the wire). Printed:
how many viewers and page loads were answered, page-load latency with the viewers open next to the
same 50 loads with no viewer open (the bare baseline, same run) and the ratio, the 201st viewer's
answer (503: the cap), and the web process's thread count and RSS (bounded: the pool is fixed).

    .venv/bin/python benchmarks/web_load.py [VIEWERS] [PAGE_LOADS]
"""
from __future__ import annotations

import http.client
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.memcached import Memcached  # noqa: E402
from testbed.webserver import WebServer  # noqa: E402


def proc(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def open_viewers(port: int, n: int) -> tuple:
    """Open N SSE streams; return (sockets, how many answered 200 with an event-stream)."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /blf/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, b"")
        socks.append(s)
    answered, pending = 0, set(socks)
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(1):
            s = key.fileobj
            data = key.data + s.recv(65536)
            sel.modify(s, selectors.EVENT_READ, data)
            if s in pending and b"\r\n\r\n" in data:
                pending.discard(s)
                answered += data.startswith(b"HTTP/1.1 200") and b"text/event-stream" in data
    # Keep reading in the background so the server's writes never block on a full socket.
    threading.Thread(target=_drain, args=(sel,), daemon=True).start()
    return socks, answered


def _drain(sel) -> None:
    while True:
        try:
            for key, _ in sel.select(1):
                try:
                    key.fileobj.recv(65536)
                except OSError:
                    sel.unregister(key.fileobj)
        except (OSError, ValueError, KeyError):
            return


def page_loads(port: int, n: int) -> tuple:
    """N concurrent GET /blf (each its own connection); return (answered 200, latencies in ms)."""
    go = threading.Barrier(n)
    out = [None] * n

    def one(i):
        go.wait()
        t0 = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("GET", "/blf")
            r = c.getresponse()
            r.read()
            out[i] = (r.status, (time.monotonic() - t0) * 1000)
            c.close()
        except OSError:
            out[i] = (0, (time.monotonic() - t0) * 1000)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(1 for s, _ in out if s == 200), sorted(ms for _, ms in out)


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main() -> None:
    viewers = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    loads = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with tempfile.TemporaryDirectory(prefix="web-load-") as tmp:
        d = Path(tmp)
        mc = Memcached().start()
        cfg = d / "kit.ini"
        cfg.write_text(f"""[general]
data_dir = {d}/data
[log]
dir = {d}/log
[asterisk]
ami_user = kit
ami_secret = not-used
spool_dir = {d}/spool
etc_dir = {d}/etc
run_user =
[memcached]
servers = {mc.server}
[web]
threads = 16
[blf]
max_viewers = {viewers}
anonymous_networks = 127.0.0.0/8
""")
        srv = WebServer(cfg).start(timeout=60)
        try:
            pid = srv.proc.pid
            page_loads(srv.port, 5)                                 # warm up (templates, hub)
            base_ok, base = page_loads(srv.port, loads)
            idle = proc(pid)
            t0 = time.monotonic()
            socks, answered = open_viewers(srv.port, viewers)
            opened = time.monotonic() - t0
            extra, extra_ok = open_viewers(srv.port, 1)
            over = extra[0]
            load_ok, lat = page_loads(srv.port, loads)
            busy = proc(pid)
            print(f"viewers: {answered}/{viewers} answered with a live stream in {opened:.2f} s; "
                  f"viewer {viewers + 1}: {'a stream (cap not applied!)' if extra_ok else 'refused (503, cap)'}")
            print(f"page loads, no viewer open (baseline): {base_ok}/{loads} answered, "
                  f"p50 {statistics.median(base):.0f} ms, p95 {pct(base, 0.95):.0f} ms, max {base[-1]:.0f} ms")
            print(f"page loads, {viewers} viewers open:        {load_ok}/{loads} answered, "
                  f"p50 {statistics.median(lat):.0f} ms, p95 {pct(lat, 0.95):.0f} ms, max {lat[-1]:.0f} ms")
            print(f"ratio (viewers open / baseline): p50 {statistics.median(lat) / statistics.median(base):.2f}x, "
                  f"p95 {pct(lat, 0.95) / pct(base, 0.95):.2f}x")
            print(f"web process: threads {idle['Threads']} idle -> {busy['Threads']} under load "
                  f"(pool {16 + viewers} + service threads); RSS {idle['VmRSS']} -> {busy['VmRSS']}, "
                  f"peak {busy['VmHWM']}")
            for s in socks + [over]:
                s.close()
        finally:
            srv.stop()
            mc.stop()


if __name__ == "__main__":
    main()
