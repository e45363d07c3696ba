"""ASGI middleware between BentoML and the endpoints: deadlines, bounds, one error shape.

BentoML 1.4 parses the body before an endpoint runs, with no size limit and no
deadline, and its ``traffic.max_concurrency`` counts a request from its headers on,
so clients that announce a body and stall hold every slot (issue 11). This guard
reads the body itself, bounded in size (413) and time (408, then the connection is
closed), checks the upload form (BentoML answers 500 to several broken forms), and
only then counts the request against ``max_in_flight``, the limit that protects
the model (429). Error answers from below (BentoML's validation, Starlette) are
rewritten to ``{"error": "<line>"}`` and every refusal is counted by reason. A request
that passes goes to ``endpoints`` (:mod:`serving.endpoints`) with the body already read
and the form already parsed; everything else goes on down BentoML's stack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.endpoints import UploadForm
from serving.errors import REASONS, error_response, one_error_shape
from serving.metrics import service_metrics

Endpoint = Callable[[Scope, Receive, Send, "bytes | UploadForm"], Awaitable[None]]

PICKLE_MEDIA_TYPE = "application/vnd.bentoml+pickle"
FORM_FIELDS = {"image", "return_input"}  # /predict's form; 'image' required


@dataclass(frozen=True)
class GuardLimits:
    """Per-request bounds; the defaults suit a 2-core box serving a small MLP."""

    max_bytes: int  # any request body
    body_timeout_s: float = 5.0  # from the request headers to the last body byte
    max_in_flight: int = 64  # requests past the body read, per worker: 429 beyond


class BodyTooLarge(Exception):
    """The body outgrew the limit while arriving (chunked, or a lying Content-Length)."""


class RequestGuard:
    """See the module docstring. ``openapi`` (when given) answers ``GET /docs.json``.

    ``api_routes`` are the POST endpoints guarded (JSON bodies unless in ``upload_routes``,
    which take multipart forms) and answered by ``endpoints``; anything else passes
    through with the error shape fixed.
    """

    def __init__(
        self,
        app: ASGIApp,
        limits: GuardLimits,
        api_routes: tuple[str, ...],
        upload_routes: tuple[str, ...],
        endpoints: Endpoint,
        openapi: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.api_routes = api_routes  # the POST endpoints; other paths pass through
        self.upload_routes = upload_routes
        self.openapi = openapi
        self.endpoints = endpoints
        self._openapi_doc: dict[str, Any] | None = None
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST" or scope["path"] not in self.api_routes:
            if scope["path"] == "/docs.json" and self.openapi is not None:
                if self._openapi_doc is None:
                    self._openapi_doc = self.openapi()
                await JSONResponse(self._openapi_doc)(scope, receive, send)
                return
            await self.app(scope, receive, one_error_shape(send))
            return
        problem = self._check_headers(scope)
        if problem is not None:
            await self._reject(scope, receive, send, *problem)
            return
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                body = await _read_body(receive, self.limits.max_bytes)
        except TimeoutError:
            message = f"the request body did not arrive within {self.limits.body_timeout_s} s"
            await self._reject(scope, receive, send, 408, message)
            return
        except BodyTooLarge:
            await self._reject(scope, receive, send, 413, self._too_large)
            return
        content: bytes | UploadForm = body
        if scope["path"] in self.upload_routes:
            form = await _read_form(scope, body)
            if isinstance(form, str):
                await self._reject(scope, receive, send, 400, form)
                return
            content = form
        if self.in_flight >= self.limits.max_in_flight:
            message = f"over {self.limits.max_in_flight} requests in flight; retry shortly"
            await self._reject(scope, receive, send, 429, message, close=False)
            return
        self.in_flight += 1
        try:
            await self.endpoints(scope, receive, one_error_shape(send), content)
        finally:
            self.in_flight -= 1

    def _check_headers(self, scope: Scope) -> tuple[int, str] | None:
        headers = Headers(scope=scope)
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == PICKLE_MEDIA_TYPE:
            return 415, "pickle bodies are not accepted; send JSON"
        declared = headers.get("content-length")
        if declared is not None and (
            not declared.isdigit() or int(declared) > self.limits.max_bytes
        ):
            return 413, self._too_large
        if scope["path"] in self.upload_routes:
            if media_type != "multipart/form-data":
                return 415, "send the image as multipart/form-data with a file field named 'image'"
        elif media_type != "application/json":
            return 415, f"send JSON (Content-Type: application/json), not {media_type or 'nothing'}"
        return None

    async def _reject(
        self, scope: Scope, receive: Receive, send: Send, status: int, message: str,
        close: bool = True,
    ) -> None:  # fmt: skip
        """Answer ``status``; close the connection when the body was not (fully) read."""
        service_metrics().reject(REASONS[status])
        await error_response(status, message, close=close)(scope, receive, send)

    @property
    def _too_large(self) -> str:
        return f"the request body is over the limit of {self.limits.max_bytes} bytes"


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # client went away
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as usual

    return replay


async def _read_form(scope: Scope, body: bytes) -> UploadForm | str:
    """The form if it holds a file field ``image`` and maybe ``return_input``, else why not."""
    request = Request(scope, receive=_replay(body, _no_more))
    try:
        form = await request.form(max_files=1, max_fields=len(FORM_FIELDS))
    except Exception as exc:  # starlette raises several types for broken multipart
        return f"malformed multipart/form-data body: {getattr(exc, 'detail', exc)}"
    try:
        keys = list(form.keys())
        if "image" not in keys or not set(keys) <= FORM_FIELDS or len(keys) != len(set(keys)):
            return f"the form must hold a file field 'image' (and maybe 'return_input'); got {keys}"
        if not isinstance(form["image"], UploadFile):
            return "the 'image' field must be a file upload (curl -F image=@digit.png), not text"
        flag = form.get("return_input")
        if flag is not None and (not isinstance(flag, str) or flag not in ("true", "false")):
            return "the 'return_input' field must be the text 'true' or 'false'"
        return UploadForm(await form["image"].read(), flag == "true")
    finally:
        await form.close()


async def _no_more() -> Message:
    return {"type": "http.disconnect"}
