"""A real HTTP mirror on loopback whose answers each test defines: slow, lying or broken."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator

Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


class _MirrorHandler(http.server.BaseHTTPRequestHandler):
    """Runs the behaviour registered for the request path; 404 otherwise."""

    routes: dict[str, Behaviour]
    release: threading.Event

    def do_GET(self) -> None:  # noqa: N802
        behaviour = self.routes.get(self.path)
        if behaviour is None:
            self.send_error(404)
            return
        # The client giving up on a slow or lying mirror is the point of many tests.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            behaviour(self)

    def log_message(self, *args: object) -> None:
        pass


class HttpMirror:
    """A running mirror: its base URL and the behaviour of each file it serves."""

    def __init__(self, url: str, routes: dict[str, Behaviour], release: threading.Event) -> None:
        self.url = url  # base URL, as in download.mirrors: file names are appended
        self.routes = routes
        self.release = release  # set at teardown: ends any response still stalling

    def route(self, name: str, behaviour: Behaviour) -> None:
        """Answer requests for ``name`` with ``behaviour(handler)``."""
        self.routes[f"/mnist/{name}"] = behaviour

    def respond(self, name: str, status: int, body: bytes) -> None:
        """Answer requests for ``name`` with ``status`` and ``body``."""

        def send(handler: http.server.BaseHTTPRequestHandler) -> None:
            handler.send_response(status)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        self.route(name, send)


@contextlib.contextmanager
def http_mirror() -> Iterator[HttpMirror]:
    """A mirror on a free loopback port for the ``with`` block; shut down (stalls released)
    on the way out."""
    release = threading.Event()
    routes: dict[str, Behaviour] = {}
    handler = type("Handler", (_MirrorHandler,), {"routes": routes, "release": release})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield HttpMirror(f"http://127.0.0.1:{server.server_address[1]}/mnist/", routes, release)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
