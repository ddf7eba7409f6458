"""A fake NiMbox "direct" phone-call web service on 127.0.0.1, after the vendor's wiki page
(see docs/nimbox.md): GET create / delete with `token`, JSON answers with `error` true/false.

Enforced as documented: the token; `initiated` ISO-8601, `source` and `destination` required; an
unknown destination answers {"error": true, "errors": {"destination": ...}}; one call per
(initiated, source, destination); delete takes `from` and `to` as YYYY-MM-DD, both exclusive.

Assumptions for what the page leaves open, marked [U]:
- [U] errors come with HTTP 200 (the page shows bodies only).
- [U] a wrong token answers {"error": true, "errors": {"token": "Token no válido"}}.
- [U] a duplicate answers {"error": true, "errors": {"phonecall": "La llamada ya existe"}}
  (duplicate_style="error", default) or the existing ids with error false (duplicate_style="success").
- [U] uniqueness compares the three values as sent (strings), not as instants.
- [U] a contact is any number of 10 digits or more unless `contacts` lists them (then only those).
Fault modes (attribute `mode`): "up"; "503" answers HTTP 503; "hang" answers after `hang_seconds`;
"reset" closes the connection without an answer; "echo" answers HTTP 400 with an HTML error page
quoting the request line (as many web servers do), token included. `latency` (seconds) delays every
answer; `delete_hang` (seconds) delays the answer of a delete after the calls are deleted.

Run alone for benchmarks: python -m testbed.fakes.nimbox --latency 0.02 (prints the URL).
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Dict, Optional, Set, Tuple
from urllib.parse import parse_qs, urlsplit

from testbed.fakes.server import LocalServer

_ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")


class FakeNimbox(LocalServer):
    def __init__(self, token: str = "tok-secret", contacts: Optional[Set[str]] = None, latency: float = 0.0,
                 duplicate_style: str = "error", hang_seconds: float = 30.0):
        self.token = token
        self.contacts = contacts
        self.latency = latency
        self.duplicate_style = duplicate_style
        self.hang_seconds = hang_seconds
        self.mode = "up"
        self.delete_hang = 0.0
        self.lock = threading.Lock()
        self.records: Dict[Tuple[str, str, str], dict] = {}
        self.create_requests = 0                    # creates answered (counted when processed)
        self.arrivals = 0                           # requests received (counted on arrival)
        self.attempts: Counter = Counter()          # key -> create requests that reached the data
        self.answers: Counter = Counter()           # created / duplicate / rejected / token / bad / fault
        self.connections = 0
        self._ids = itertools.count(1000)

    # ---- server ----------------------------------------------------------------------------------

    def serve(self, handler_class) -> None:
        from http.server import ThreadingHTTPServer

        class Server(ThreadingHTTPServer):
            request_queue_size = 511     # a real web server's backlog (nginx), not the stdlib's 5
            daemon_threads = True
        self.server = Server(("127.0.0.1", 0), handler_class)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def start(self) -> "FakeNimbox":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                # Headers and body leave in two writes: without this, Nagle + delayed ACK add 40 ms
                # to every keep-alive request (a real web server does not behave like that).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with fake.lock:
                    fake.connections += 1

            def do_GET(self):
                with fake.lock:
                    fake.arrivals += 1
                u = urlsplit(self.path)
                q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
                mode = fake.mode
                if mode == "reset":
                    with fake.lock:
                        fake.answers["fault"] += 1
                    self.close_connection = True
                    self.connection.close()
                    return
                if mode == "echo":
                    with fake.lock:
                        fake.answers["fault"] += 1
                    page = f"<html><body>Bad Request: GET {self.path}</body></html>".encode()
                    return self._send(400, page, "text/html")
                if mode == "hang":
                    time.sleep(fake.hang_seconds)
                if fake.latency:
                    time.sleep(fake.latency)
                if mode == "503":
                    with fake.lock:
                        fake.answers["fault"] += 1
                    return self._send(503, b"<html>Service Unavailable</html>", "text/html")
                if u.path.endswith("/direct/items/phonecalls/create"):
                    answer = fake.create(q)
                elif u.path.endswith("/direct/items/phonecalls/delete"):
                    answer = fake.delete(q)
                    time.sleep(fake.delete_hang)
                else:
                    return self._send(404, b"Not Found", "text/plain")
                self._send(200, json.dumps(answer).encode(), "application/json")

            def _send(self, status, body, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                try:
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True   # the client gave up (its timeout): NiMbox did the work

        self.serve(Handler)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- API -------------------------------------------------------------------------------------

    def _known(self, number: str) -> bool:
        if self.contacts is not None:
            return number in self.contacts
        return bool(re.fullmatch(r"\+?\d{10,15}", number))

    def create(self, q: Dict[str, str]) -> dict:
        with self.lock:
            self.create_requests += 1
            if q.get("token") != self.token:
                self.answers["token"] += 1
                return {"error": True, "errors": {"token": "Token no válido"}}
            errors = {}
            initiated, source, dest = q.get("initiated", ""), q.get("source", ""), q.get("destination", "")
            if not _ISO_RE.fullmatch(initiated):
                errors["initiated"] = "Fecha no válida"
            if not source:
                errors["source"] = "Campo obligatorio"
            if not dest:
                errors["destination"] = "Campo obligatorio"
            elif not self._known(dest):
                errors["destination"] = f"No existe ningún contacto con el teléfono {dest}"
            if q.get("duration", "") and not q["duration"].isdigit():
                errors["duration"] = "Número no válido"
            if errors:
                self.answers["rejected"] += 1
                return {"error": True, "errors": errors}
            key = (initiated, source, dest)
            self.attempts[key] += 1
            if key in self.records:
                self.answers["duplicate"] += 1
                rec = self.records[key]
                if self.duplicate_style == "success":
                    return {"error": False, "contactId": rec["contactId"], "phonecallId": rec["phonecallId"]}
                return {"error": True, "errors": {"phonecall": "La llamada ya existe"}}
            rec = {"initiated": initiated, "source": source, "destination": dest,
                   "duration": q.get("duration", ""), "url": q.get("url", ""),
                   "contactId": abs(hash(dest)) % 100000, "phonecallId": next(self._ids), "at": time.time()}
            self.records[key] = rec
            self.answers["created"] += 1
            return {"error": False, "contactId": rec["contactId"], "phonecallId": rec["phonecallId"]}

    def delete(self, q: Dict[str, str]) -> dict:
        with self.lock:
            if q.get("token") != self.token:
                return {"error": True, "errors": {}}
            try:
                lo, hi = dt.date.fromisoformat(q.get("from", "")), dt.date.fromisoformat(q.get("to", ""))
            except ValueError:
                return {"error": True, "errors": {}}
            gone = [k for k in self.records if lo < dt.date.fromisoformat(k[0][:10]) < hi]   # both exclusive
            for k in gone:
                del self.records[k]
            return {"count": len(gone), "error": False}

    # ---- helpers for tests -----------------------------------------------------------------------

    def wait_records(self, n: int, timeout: float) -> float:
        """Poll until at least N records exist; returns the time it took; fails after TIMEOUT."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with self.lock:
                if len(self.records) >= n:
                    return time.monotonic() - t0
            time.sleep(0.01)
        raise AssertionError(f"fake NiMbox: {len(self.records)} record(s) after {timeout} s, expected {n}")


def main() -> None:
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--token", default="tok-secret")
    a = p.parse_args()
    fake = FakeNimbox(token=a.token, latency=a.latency).start()
    print(fake.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
