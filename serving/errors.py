"""The service's one error type, and the one JSON body every error answer has.

Anything on the request path that refuses a request raises :class:`ServiceError`
(status + one line naming the problem and the fix); :class:`serving.front.ApiFront`
turns it into ``{"error": "..."}`` in one place. What the input libraries refuse
(:mod:`mnist_mlops.imaging`; :mod:`mnist_mlops.inference.arrays`, the .npy check bulk
scoring shares) becomes a
ServiceError through :func:`refusal`, the one map from their error types to a status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus

from bentoml.exceptions import BentoMLException
from starlette.responses import JSONResponse
from starlette.types import Message, Send

from mnist_mlops import imaging
from mnist_mlops.inference import arrays
from serving.metrics import service_metrics

# What the client sent wrong -> status. In order: subclasses first.
INPUT_ERRORS: tuple[tuple[type[Exception], int], ...] = (
    (imaging.ImageTooLargeError, 413),
    (imaging.UnsupportedFormatError, 415),
    (imaging.NoInkError, 422),
    (imaging.ImageError, 400),
    (arrays.TooManyRowsError, 413),
    (arrays.ArrayFormatError, 400),
)
INPUT_ERROR_TYPES = tuple(cls for cls, _ in INPUT_ERRORS)
# Status -> the reason label of ``mnist_rejected_requests``.
REASONS = {400: "malformed", 404: "not_found", 405: "method_not_allowed", 408: "timeout",
           413: "too_large", 415: "unsupported_media_type", 422: "no_digit", 429: "overloaded",
           500: "internal", 503: "model_not_loaded"}  # fmt: skip
# Every status a predict route can answer besides 200, for the OpenAPI document
# (/feedback's: serving.feedback.FEEDBACK_ERROR_STATUSES).
PREDICT_ERROR_STATUSES = {
    400: "malformed request: bad JSON, wrong shape or range, broken form, image or .npy",
    408: "the request headers or body did not arrive in time; the connection is closed",
    413: "body, upload, pixel count or number of images over the limit",
    415: "a body of the wrong media type, an unsupported image format, or pickle",
    422: "a valid image with no digit in it (blank)",
    429: "too many requests in flight at the model; retry later",
    503: "the model failed its checks at start-up; the service is not ready",
}
INTERNAL_ERROR = "An unexpected error has occurred, please check the server log."
_REWRITTEN = {b"content-length", b"content-type"}  # headers of an error body that is rewritten


class ServiceError(BentoMLException):
    """A refused request: HTTP ``status`` and a one-line ``message`` for the client.

    ``close`` ends the connection after the answer (the request body was not read to its
    end, so the connection cannot carry another request); ``headers`` go out with the
    answer (a 429's ``Retry-After``). A BentoMLException, so BentoML's own dispatch (which
    the front bypasses) would answer the same status.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        close: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, error_code=HTTPStatus(status))
        self.status = status
        self.message = message
        self.close = close
        self.headers = dict(headers or {})


def refusal(exc: Exception) -> ServiceError:
    """The ServiceError for what imaging or the array parser refused (see INPUT_ERRORS)."""
    status = next(code for cls, code in INPUT_ERRORS if isinstance(exc, cls))
    return ServiceError(status, str(exc))


def error_response(
    status: int, message: str, close: bool = False, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """``{"error": message}`` with ``status`` and ``headers``; ``close`` ends the connection
    after it."""
    extra = {**(headers or {}), **({"connection": "close"} if close else {})}
    return JSONResponse({"error": message}, status_code=status, headers=extra or None)


def error_message(body: bytes) -> str:
    """The one-line message in an error body from BentoML or Starlette (plain or JSON)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip() or "bad request"
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        return str(data.get("error") or data.get("detail") or "bad request")
    return str(data)


def one_error_shape(send: Send) -> Send:
    """For the routes BentoML answers (404, 405, /readyz...): error bodies become ``{"error"}``.

    1xx-3xx answers pass through untouched; each rewritten error is counted by status.
    """
    start: Message | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start" and message["status"] >= 400:
            start = message
            return
        if start is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        status = start["status"]
        service_metrics().reject(REASONS.get(status, str(status)))
        response = error_response(status, error_message(b"".join(chunks)))
        kept = [(k, v) for k, v in start.get("headers", []) if k.lower() not in _REWRITTEN]
        await send({**start, "headers": kept + response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})

    return wrapped
