"""The draw-a-digit page: the static files in ``serving/static/`` as an ASGI app.

The service mounts it (:func:`mount_ui`), so one ``bentoml serve`` answers both the API
and the page::

    MNIST_MODEL_PATH=models/model.onnx bentoml serve serving.service:MnistClassifier --port 3000
    # then open http://127.0.0.1:3000/ui/

The page is plain HTML, CSS and JavaScript (no build step, no CDN) and calls the API
with relative URLs (``../predict``), so it works under any mount path or proxy prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

STATIC_DIR = Path(__file__).with_name("static")
UI_PATH = "/ui"


def mount_ui(service: Any, path: str = UI_PATH) -> None:
    """Record, on a BentoML service class, the page at ``path + "/"`` and the redirect
    from ``path`` (declarative: BentoML applies both when it builds each worker's app)."""
    service.add_asgi_middleware(FolderRedirect, path=path)
    service.mount_asgi_app(static_app(), path=path)


def static_app(directory: Path = STATIC_DIR) -> StaticFiles:
    """Serve ``directory``, with ``index.html`` for the folder itself (``/ui/``).

    ``/ui`` itself is :class:`FolderRedirect`'s: the mount only matches ``/ui/...``.
    """
    return StaticFiles(directory=directory, html=True)


class FolderRedirect:
    """ASGI middleware: ``/ui`` answers 307 to ``ui/``, a relative URL, so the page's own
    relative URLs resolve.

    Starlette's router would redirect too, but to an absolute URL built from the Host
    header and scheme the service saw. Behind a proxy that is not the address the browser
    used: nginx's ``$host`` has no port (a browser on :8080 was sent to :80) and a TLS
    front makes it ``http://``. A relative reference resolves against the URL the browser
    asked for, whatever stands in between, under a path prefix too.
    """

    def __init__(self, app: ASGIApp, path: str = UI_PATH) -> None:
        self.app = app
        self.path = path
        self.location = path.rsplit("/", 1)[-1] + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        location = self.location.encode() + (b"?" + query if query else b"")
        headers = [(b"location", location), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 307, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
