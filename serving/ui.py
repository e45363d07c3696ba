"""The draw-a-digit page: the static files in ``serving/static/`` as an ASGI app.

The service mounts it (``MnistClassifier.mount_asgi_app(static_app(), path="/ui")``),
so one ``bentoml serve`` answers both the API and the page::

    MNIST_MODEL_PATH=models/model.onnx bentoml serve serving.service:MnistClassifier --port 3000
    # then open http://127.0.0.1:3000/ui/

The page is plain HTML, CSS and JavaScript (no build step, no CDN) and calls the API
with relative URLs (``../predict``), so it works under any mount path or proxy prefix.
"""

from __future__ import annotations

from pathlib import Path

from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
UI_PATH = "/ui"


def static_app(directory: Path = STATIC_DIR) -> StaticFiles:
    """Serve ``directory``, with ``index.html`` for the folder itself (``/ui/``).

    Starlette redirects ``/ui`` to ``/ui/``, so the page's relative URLs resolve.
    """
    return StaticFiles(directory=directory, html=True)
