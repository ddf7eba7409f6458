"""What every fake HTTP API shares: a threaded server on a free 127.0.0.1 port, started and stopped."""
from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Optional


class LocalServer:
    """Base of the fakes: `self.serve(Handler)` in start(), `self.port`, `stop()`."""

    server: Optional[ThreadingHTTPServer] = None

    def serve(self, handler_class) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
