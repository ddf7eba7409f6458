"""A small threaded WSGI server (standard library) for `asterisk-kit web`.

Threads, because live pages keep a request open (Server-Sent Events); wsgiref alone serves one
request at a time. Access lines go to the kit's log instead of stderr.
"""
from __future__ import annotations

import logging
import signal
import socketserver
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(WSGIRequestHandler):
    log = logging.getLogger("asterisk_kit.web.access")

    def log_message(self, fmt, *args):
        self.log.info("%s %s", self.address_string(), fmt % args)

    def address_string(self):
        return self.client_address[0]


def serve(app, host: str, port: int, log: logging.Logger) -> None:
    """Serve until SIGTERM / SIGINT."""
    _Handler.log = log.getChild("access")
    httpd = make_server(host, port, app, server_class=ThreadingWSGIServer, handler_class=_Handler)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    log.info("web app listening on http://%s:%d/", host, port)
    try:
        httpd.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        log.info("web app stopping")
    finally:
        httpd.server_close()
