"""The HTTP server of `asterisk-kit web`: cheroot (CherryPy's WSGI server) with the kit's limits.

cheroot gives HTTP/1.1 keep-alive (idle connections wait in a selector, not in a thread), a fixed
thread pool, a listen backlog, a read timeout and header / body size limits enforced while the
request head is read, before any application code runs. Live pages keep a request open (BLF
Server-Sent Events, one thread each), so the pool is `[web] threads` plus `[blf] max_viewers`.

`guard()` is the WSGI layer in front of Bottle: it refuses what must never reach a form parser
(bodies above the anonymous limit from a client that is not logged in, chunked bodies, a login
form that is not urlencoded), logs one access line per request and, with TLS, adds HSTS.
"""
from __future__ import annotations

import logging
import signal
import ssl
from typing import Callable, Iterable, Optional
from urllib.parse import urlsplit, urlunsplit

from cheroot import wsgi

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
HSTS = "max-age=31536000"


def _refuse(start_response, status: str, text: str) -> Iterable[bytes]:
    body = (text + "\n").encode("utf-8")
    # Connection: close, so a client still sending its body is not read any further.
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            ("Connection", "close"), ("Cache-Control", "no-store")])
    return [body]


def guard(app, *, anonymous_body: int, logged_in: Callable[[dict], bool], log: logging.Logger,
          tls: bool = False):
    """WSGI wrapper run before the application; LOGGED_IN(environ) says whether the request carries a
    live logged-in session (checked only for a body larger than ANONYMOUS_BODY)."""
    access = log.getChild("access")

    def wrapped(environ, start_response):
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        peer = environ.get("REMOTE_ADDR", "")
        if method in UNSAFE:
            refusal = _check_body(environ, anonymous_body, logged_in)
            if refusal:
                log.warning("refused %s %s from %s: %s", method, path, peer, refusal[1])
                return _refuse(start_response, *refusal)

        def sr(status, headers, exc_info=None):
            access.info("%s %s %s %s", peer, method, path, status.split(" ", 1)[0])
            headers = [(k, _relative(v) if k.lower() == "location" else v) for k, v in headers]
            if tls:
                headers = list(headers) + [("Strict-Transport-Security", HSTS)]
            return start_response(status, headers, exc_info)
        return app(environ, sr)
    return wrapped


def _relative(location: str) -> str:
    """Bottle makes redirects absolute from the client's Host / X-Forwarded-Host, which any client can
    set: the kit only redirects within itself, so the Location keeps just the path (RFC 7231 allows it)."""
    parts = urlsplit(location)
    if not (parts.scheme or parts.netloc):
        return location
    return urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))


def _check_body(environ, anonymous_body: int, logged_in: Callable[[dict], bool]) -> Optional[tuple]:
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return "411 Length Required", "a request body needs a Content-Length"
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return "400 Bad Request", "malformed Content-Length"
    if length > anonymous_body and not logged_in(environ):
        return ("413 Request Entity Too Large",
                "request body too large for a client that is not logged in (log in again if your session ended)")
    ctype = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if environ.get("PATH_INFO") == "/login" and length and ctype != "application/x-www-form-urlencoded":
        # The login form is urlencoded; anything else from a client not yet logged in is not parsed.
        return "400 Bad Request", "the login form must be application/x-www-form-urlencoded"
    return None


def make_server(app, host: str, port: int, *, threads: int, backlog: int, timeout: int, max_header: int,
                max_body: int, log: logging.Logger, tls_cert: str = "", tls_key: str = "") -> wsgi.Server:
    server = wsgi.Server((host, port), app, numthreads=threads, max=threads, request_queue_size=backlog,
                         timeout=timeout, accepted_queue_size=max(backlog, threads), server_name="asterisk-kit")
    server.max_request_header_size = max_header
    server.max_request_body_size = max_body
    # Idle keep-alive connections wait in cheroot's selector (no thread); keep enough of them.
    server.keep_alive_conn_limit = max(100, threads)
    err = log.getChild("server")

    def error_log(msg="", level=logging.INFO, traceback=False):
        # cheroot's own problems (a client's broken TLS handshake, a reset socket) are not the app's:
        # one line at their level; a traceback only for a real error.
        err.log(level, "%s", msg, exc_info=traceback and level >= logging.ERROR)
    server.error_log = error_log  # type: ignore[method-assign]
    if tls_cert:
        from cheroot.ssl.builtin import BuiltinSSLAdapter
        adapter = BuiltinSSLAdapter(tls_cert, tls_key)
        adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
        server.ssl_adapter = adapter
    return server


def serve(server: wsgi.Server, log: logging.Logger) -> None:
    """Serve until SIGTERM / SIGINT."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    host, port = server.bind_addr[:2]
    scheme = "https" if server.ssl_adapter else "http"
    try:
        # prepare() starts the worker threads: inside the try, so a SIGTERM arriving meanwhile
        # still stops them (they are not daemon threads and would keep the process alive).
        server.prepare()
        log.info("web app listening on %s://%s:%d/ (%d threads)", scheme, host, server.bind_addr[1] if port == 0
                 else port, server.requests.min)
        server.serve()
    except KeyboardInterrupt:
        log.info("web app stopping")
    finally:
        server.stop()


def doctor_checks(cfg):
    """`asterisk-kit doctor`: can the certificate be loaded; is plain HTTP reachable from the network?"""
    import ipaddress
    w = cfg["web"]
    where = f"{w['listen']}:{w['port']}"
    if w["tls_cert"]:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(w["tls_cert"], w["tls_key"])
        except (OSError, ssl.SSLError) as e:
            yield "web TLS", False, f"[web] tls_cert / tls_key ({w['tls_cert']}, {w['tls_key']}): {e}"
            return
        yield "web TLS", True, f"HTTPS on {where} with {w['tls_cert']}"
        return
    try:
        loopback = ipaddress.ip_address(w["listen"]).is_loopback
    except ValueError:
        loopback = w["listen"] == "localhost"
    if loopback:
        yield "web TLS", True, f"plain HTTP on {where}, loopback only (put an HTTPS proxy in front for the network)"
    else:
        yield "web TLS", True, (f"WARNING: plain HTTP on {where}: passwords and session cookies cross the network "
                                "unencrypted; set [web] tls_cert and tls_key (FreePBX: "
                                "/etc/asterisk/keys/integration/) or serve it behind an HTTPS proxy")
