"""The HTTP front of the API: one path from the request to the answer, one place for errors.

An ASGI middleware the service adds in front of BentoML's app. For a POST to an API
route (:mod:`serving.routes`) it runs, in order (:meth:`ApiFront._answer`):

1. headers: the media type the route takes (415, pickle refused), a declared length
   within the bound (413);
2. body: read within ``body_timeout_s`` (408) and ``max_bytes`` (413), then the
   connection is closed, since the rest of the body was not read;
3. parse: JSON through BentoML's input model, a form, or raw bytes (400);
4. the model's slot: at most ``max_in_flight`` requests past their body read (429);
   stalled clients never hold one;
5. the service method, which raises :class:`~serving.errors.ServiceError` for what it
   refuses (4xx, 503); its pydantic answer goes out as JSON, a Response it made (the
   ``.npy`` answer) as it is.

Any ServiceError on the way becomes ``{"error": ...}`` (with its headers: a 429's
``Retry-After``) in :meth:`ApiFront.__call__`, the one place, and is counted by reason;
a bug is logged and answered 500. Why not BentoML's dispatch: it parses the body with no
bound or deadline, counts concurrency from the headers on (so stalled bodies hold every
slot), and its per-request work (signature inspection, a temp-file copy of each upload,
a second form parse) cost more CPU than the model (bench/serve_load.py's CPU column).
Other paths go down BentoML's stack, with their error bodies rewritten to the same
shape; ``GET /docs.json`` is the corrected document. At start-up the front has each
request keep its connection's own peer (:mod:`serving.peers`), for /feedback's bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import bentoml
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import (
    INTERNAL_ERROR,
    REASONS,
    ServiceError,
    error_response,
    one_error_shape,
)
from serving.metrics import service_metrics
from serving.peers import keep_peers
from serving.routes import Route, media_type

logger = logging.getLogger(__name__)
_REPLACED = (b"content-length", b"content-type")  # the ready answer's, now the JSON body's
PICKLE_MEDIA_TYPE = "application/vnd.bentoml+pickle"
READY_PATH = "/readyz"  # BentoML answers it; a ready answer's body says which model answers


@dataclass(frozen=True)
class Limits:
    """Per-request bounds (their defaults: :mod:`serving.settings`)."""

    max_bytes: int  # any request body
    body_timeout_s: float  # from the request headers to the last body byte
    max_in_flight: int  # requests past the body read, per worker: 429 beyond


class ApiFront:
    """See the module docstring. ``openapi(routes)`` builds the document at ``/docs.json``."""

    def __init__(
        self,
        app: ASGIApp,
        routes: tuple[Route, ...],
        limits: Limits,
        openapi: Callable[[tuple[Route, ...]], dict[str, Any]],
    ) -> None:
        self.app = app
        self.routes = {route.path: route for route in routes}
        self.limits = limits
        self.openapi = openapi
        self._openapi_doc: dict[str, Any] | None = None
        self._service: Any = None  # the service instance, once BentoML has made it
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self._pass_down(scope, receive, send)
            return
        try:
            response = await self._answer(route, scope, receive)
        except ServiceError as exc:
            service_metrics().reject(REASONS[exc.status])
            response = error_response(exc.status, exc.message, exc.close, exc.headers)
        except Exception:
            logger.exception("%s failed", route.path)
            service_metrics().reject(REASONS[500])
            response = error_response(500, INTERNAL_ERROR)
        await response(scope, receive, send)

    async def _answer(self, route: Route, scope: Scope, receive: Receive) -> Response:
        """The request path, steps 1-5 of the module docstring."""
        self._check_headers(route, scope)
        body = await self._read_body(receive)
        arguments = await route.parse(scope, body)
        with self._model_slot():
            answer = await route.method(self._instance(), **arguments)
        if isinstance(answer, Response):  # a binary answer, made by the method
            return answer
        # exclude_none: a field not asked for (model_input) is left out, never null
        return Response(answer.model_dump_json(exclude_none=True), media_type="application/json")

    def _check_headers(self, route: Route, scope: Scope) -> None:
        kind = media_type(scope)
        if kind == PICKLE_MEDIA_TYPE:
            raise ServiceError(415, f"pickle bodies are not accepted; {route.hint}", close=True)
        if kind not in route.media_types:
            message = (
                f"{route.hint} (Content-Type: {route.media_types[0]}), not {kind or 'nothing'}"
            )
            raise ServiceError(415, message, close=True)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (
            not declared.isdigit() or int(declared) > self.limits.max_bytes
        ):
            raise ServiceError(413, self._too_large, close=True)

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body, within the size and time bounds (else the connection is closed)."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # the client went away
                        break
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.limits.max_bytes:  # chunked, or a lying Content-Length
                        raise ServiceError(413, self._too_large, close=True)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            message = f"the request body did not arrive within {self.limits.body_timeout_s} s"
            raise ServiceError(408, message, close=True) from None
        return b"".join(chunks)

    @contextlib.contextmanager
    def _model_slot(self) -> Iterator[None]:
        if self.in_flight >= self.limits.max_in_flight:
            message = f"over {self.limits.max_in_flight} requests in flight; retry shortly"
            raise ServiceError(429, message)
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def _instance(self) -> Any:
        if self._service is None:  # set by BentoML when the app starts, before any request
            self._service = bentoml.get_current_service()
        return self._service

    async def _pass_down(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Not an API POST: ``/docs.json`` here, the rest to BentoML with one error shape."""
        if scope["type"] == "http" and scope["path"] == "/docs.json":
            try:
                if self._openapi_doc is None:
                    self._openapi_doc = self.openapi(tuple(self.routes.values()))
                response: Response = JSONResponse(self._openapi_doc)
            except Exception:  # a bug: answered, not left hanging below BentoML's stack
                logger.exception("building /docs.json failed")
                response = error_response(500, INTERNAL_ERROR)
            await response(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == READY_PATH:
            ready = ready_body(send, lambda: self._instance().readiness())
            await self.app(scope, receive, one_error_shape(ready))
        elif scope["type"] == "http":
            await self.app(scope, receive, one_error_shape(send))
        else:
            if scope["type"] == "lifespan":  # at start-up: requests keep their own peer
                keep_peers(receive)
            await self.app(scope, receive, send)

    @property
    def _too_large(self) -> str:
        return f"the request body is over the limit of {self.limits.max_bytes} bytes"


def ready_body(send: Send, body: Callable[[], dict[str, Any]]) -> Send:
    """BentoML's ready ``/readyz`` (200, an empty line) answered as JSON ``body()`` instead:
    the model's version and precision. Not-ready answers pass through (to the error shape)."""
    rewriting = False

    async def wrapped(message: Message) -> None:
        nonlocal rewriting
        if message["type"] == "http.response.start" and message["status"] == 200:
            rewriting = True
            response = JSONResponse(body())
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _REPLACED]
            await send({**message, "headers": kept + response.raw_headers})
            await send({"type": "http.response.body", "body": response.body, "more_body": True})
            return
        if rewriting and message["type"] == "http.response.body":
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b""})
            return
        await send(message)

    return wrapped
