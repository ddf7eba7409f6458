"""A fake Beeline cloud PBX portal API on 127.0.0.1, following /work/shared/apis/beeline.md:
X-MPBX-API-AUTH-TOKEN on every request, `GET records?id=` (cursor exclusive, at most 100 items,
ascending by numeric id), `GET v2/records/{id}`, `GET v2/records/{id}/download` (mp3 streamed),
JSON error bodies {errorCode, description}.

Picks for the facts marked [U] in the notes (the client must cope with alternatives too):
- bad or missing token: HTTP 401 {"errorCode": "AuthenticationFailed", ...} (a real PBX might say
  403 or 400; the client classifies by status and by the body's words).
- missing record: HTTP 404 {"errorCode": "NotFound", ...}; on download the same JSON body with
  Content-Type application/json (the documented "JSON instead of audio" case).
- no rate limit unless a "429" fault is injected (answered with Retry-After: 1).
- `phone` as 11 digits starting with 7; `abonent.phone` likewise; some names in Cyrillic.

Audio is generated, never stored: record k's mp3 is "ID3" + a deterministic byte pattern of
`size` bytes (expected_audio() gives the same bytes to the tests), streamed in 64 KiB pieces.

Faults: `fault(endpoint, rid, kind, times=1)` with endpoint "list", "record", "download" (rid None:
any record). Kinds: "500", "429", "truncate" (announces the full length, sends half, closes),
"json_error" (200 with a JSON error body; on download: application/json), "json_as_audio" (the
same body labelled audio/mpeg), "missing" (404 JSON),
"slow" (sleeps `slow_seconds` before answering), "drop" (closes the connection without answering).

`latency`: seconds every answer is held before it starts (the network round trip and the portal's
own work, which a real cloud API always adds; not documented by the vendor, benchmarks choose it).

Run alone for benchmarks: python -m testbed.fakes.beeline --records 200 --size 5000000 [--latency 0.1]
(prints URL).
"""
from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from testbed.fakes.server import LocalServer

PAGE = 100
BLOCK = 64 * 1024
BASE_TIME_MS = 1_780_000_000_000   # 2026-05-28, epoch milliseconds UTC


def expected_audio(rid: str, size: int) -> bytes:
    return b"".join(audio_chunks(rid, size))


def _block(rid: str) -> bytes:
    return random.Random(int(rid)).randbytes(BLOCK)


def audio_chunks(rid: str, size: int):
    head = b"ID3\x04\x00\x00\x00\x00\x00\x00"
    block = _block(rid)
    yield head[:size]
    left = size - len(head)
    while left > 0:
        piece = block[:min(left, BLOCK)]
        yield piece
        left -= len(piece)


class FakeBeeline(LocalServer):
    def __init__(self, *, records: int = 10, first_id: int = 99990, token: str = "tok-0001",
                 size: int = 20000, sizes: Optional[Dict[str, int]] = None, slow_seconds: float = 3.0,
                 seed: int = 5, short_list: bool = False, latency: float = 0.0):
        # short_list: list items without `abonent` (older answers vary), so details must be fetched.
        self.short_list = short_list
        self.latency = latency
        self.token = token
        self.slow_seconds = slow_seconds
        self.lock = threading.Lock()
        self.faults: List[list] = []           # [endpoint, rid|None, kind, times_left]
        self.requests: List[Tuple[str, str]] = []   # (endpoint, id or cursor)
        self.records: Dict[str, dict] = {}
        self.missing: set = set()              # listed but gone: record and download answer 404
        rng = random.Random(seed)
        rid = first_id
        for k in range(records):
            # Ids cross a digit-count boundary (99990 -> 100xxx) and have gaps: string order != numeric.
            rid += rng.choice((1, 1, 2, 7))
            s = str(rid)
            self.records[s] = {
                "id": s, "externalId": f"ext-{s}", "callId": f"call-{s}",
                "phone": "79" + str(160000000 + k),
                "direction": rng.choice(["INBOUND", "OUTBOUND"]),
                "date": BASE_TIME_MS + k * 61_000 + rng.randrange(1000),
                "duration": rng.randrange(1000, 600_000),
                "fileSize": (sizes or {}).get(s, size),
                "comment": None,
                "abonent": {"userId": f"91612345{k % 10:02d}@ip.beeline.ru", "phone": "7916123450" + str(k % 10),
                            "firstName": rng.choice(["Анна", "Олег", "Maria"]), "lastName": "Петрова",
                            "email": None, "department": "Продажи", "extension": str(100 + k % 10)},
            }

    # ---- helpers for tests -------------------------------------------------------------------

    def ids(self) -> List[str]:
        return sorted(self.records, key=int)

    def audio(self, rid: str) -> bytes:
        return expected_audio(rid, self.records[rid]["fileSize"])

    def fault(self, endpoint: str, rid: Optional[str], kind: str, times: int = 1) -> None:
        with self.lock:
            self.faults.append([endpoint, rid, kind, times])

    def _take_fault(self, endpoint: str, rid: Optional[str]) -> Optional[str]:
        with self.lock:
            for f in self.faults:
                if f[0] == endpoint and f[3] > 0 and (f[1] is None or f[1] == rid):
                    f[3] -= 1
                    return f[2]
        return None

    def count(self, endpoint: str, rid: Optional[str] = None) -> int:
        return sum(1 for e, r in self.requests if e == endpoint and (rid is None or r == rid))

    # ---- server ------------------------------------------------------------------------------

    def start(self) -> "FakeBeeline":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send_json(self, status: int, body, headers: Optional[dict] = None) -> None:
                raw = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def error(self, status: int, code: str, desc: str, headers=None) -> None:
                self.send_json(status, {"errorCode": code, "description": desc}, headers)

            def do_GET(self):
                u = urlsplit(self.path)
                parts = [p for p in u.path.split("/") if p]
                # Base path /apis/portal/ as on the real host.
                if parts[:2] != ["apis", "portal"]:
                    return self.error(404, "NotFound", f"no such path {u.path}")
                parts = parts[2:]
                if parts == ["records"]:
                    cursor = (parse_qs(u.query).get("id") or [""])[0]
                    endpoint, rid = "list", cursor
                elif len(parts) == 3 and parts[:2] == ["v2", "records"]:
                    endpoint, rid = "record", parts[2]
                elif len(parts) == 4 and parts[:2] == ["v2", "records"] and parts[3] == "download":
                    endpoint, rid = "download", parts[2]
                else:
                    return self.error(404, "NotFound", f"no such path {u.path}")
                with fake.lock:
                    fake.requests.append((endpoint, rid))
                if fake.latency:
                    time.sleep(fake.latency)
                if self.headers.get("X-MPBX-API-AUTH-TOKEN") != fake.token:
                    return self.error(401, "AuthenticationFailed", "Invalid or missing X-MPBX-API-AUTH-TOKEN")
                kind = fake._take_fault(endpoint, None if endpoint == "list" else rid)
                if kind == "slow":
                    time.sleep(fake.slow_seconds)
                elif kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                elif kind == "500":
                    return self.error(500, "InternalError", "Internal server error")
                elif kind == "429":
                    return self.error(429, "TooManyRequests", "Rate limit exceeded", {"Retry-After": "1"})
                elif kind == "missing":
                    return self.error(404, "NotFound", f"Record {rid} not found")
                elif kind == "json_error" and endpoint != "download":
                    return self.send_json(200, {"errorCode": "InternalError", "description": "temporary failure"})
                if endpoint == "list":
                    return self.list_records(rid)
                if rid not in fake.records or rid in fake.missing:
                    return self.error(404, "NotFound", f"Record {rid} not found")
                if endpoint == "record":
                    return self.send_json(200, fake.records[rid])
                if kind == "json_error":
                    return self.error(200, "NotFound", f"Record {rid} file not found")
                if kind == "json_as_audio":   # an error body mislabelled as audio/mpeg
                    raw = json.dumps({"errorCode": "NotFound", "description": "file not found"}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "audio/mpeg")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    return self.wfile.write(raw)
                return self.download(rid, truncate=(kind == "truncate"))

            def list_records(self, cursor: str):
                if cursor and not cursor.isdigit():
                    return self.send_json(400, {"timestamp": "2026-01-01T00:00:00.000+0000", "status": 400,
                                                "error": "Bad Request", "message": "id must be a number",
                                                "path": "/apis/portal/records"})
                after = int(cursor) if cursor else -1
                items = [fake.records[i] for i in fake.ids() if int(i) > after][:PAGE]
                if fake.short_list:
                    items = [{k: v for k, v in it.items() if k != "abonent"} for it in items]
                self.send_json(200, items)

            def download(self, rid: str, truncate: bool):
                size = fake.records[rid]["fileSize"]
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg")
                self.send_header("Content-Length", str(size))
                self.send_header("Content-Disposition", f'attachment; filename="{rid}.mp3"')
                self.end_headers()
                sent = 0
                try:
                    for chunk in audio_chunks(rid, size):
                        if truncate and sent + len(chunk) > size // 2:
                            self.wfile.write(chunk[:size // 2 - sent])
                            self.wfile.flush()
                            self.close_connection = True
                            self.connection.shutdown(2)
                            return
                        self.wfile.write(chunk)
                        sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        self.serve(Handler)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/apis/portal"


def main() -> None:
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=200)
    p.add_argument("--size", type=int, default=5_000_000)
    p.add_argument("--token", default="tok-0001")
    p.add_argument("--latency", type=float, default=0.0, help="seconds each answer is held (network + server)")
    a = p.parse_args()
    fake = FakeBeeline(records=a.records, size=a.size, token=a.token, latency=a.latency).start()
    print(fake.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
