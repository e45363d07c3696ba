"""Client mistakes -> HTTP status, reason label and the one error body ``{"error": "..."}``.

Every refusal is an :func:`error_response`; the request guard rewrites any other error
body (BentoML's, Starlette's) through :func:`error_message` and counts it by status.
"""

from __future__ import annotations

import json

from starlette.responses import JSONResponse
from starlette.types import Message, Send

from mnist_mlops import imaging
from serving.metrics import service_metrics

# What the client did wrong -> status. In order: subclasses first.
IMAGE_ERRORS: tuple[tuple[type[imaging.ImageError], int], ...] = (
    (imaging.ImageTooLargeError, 413),
    (imaging.UnsupportedFormatError, 415),
    (imaging.NoInkError, 422),
    (imaging.ImageError, 400),
)
# Status -> the reason label of ``mnist_rejected_requests``.
REASONS = {400: "malformed", 404: "not_found", 405: "method_not_allowed", 408: "timeout",
           413: "too_large", 415: "unsupported_media_type", 422: "no_digit", 429: "overloaded",
           503: "model_not_loaded"}  # fmt: skip
_REWRITTEN = {b"content-length", b"content-type"}  # headers of an error body that is rewritten
# Every status an API endpoint can answer besides 200, for the OpenAPI document.
ERROR_STATUSES = {
    400: "malformed request: bad JSON, wrong shape or range, broken form or image",
    408: "the request headers or body did not arrive in time; the connection is closed",
    413: "body, upload or pixel count over the limit",
    415: "not multipart/form-data (for /predict), an unsupported image format, or pickle",
    422: "a valid image with no digit in it (blank)",
    429: "too many requests in flight at the model; retry later",
    503: "the model failed its checks at start-up; the service is not ready",
}


def error_response(status: int, message: str, close: bool = False) -> JSONResponse:
    """``{"error": message}`` with ``status``; ``close`` ends the connection after it."""
    headers = {"connection": "close"} if close else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def image_error_status(exc: imaging.ImageError) -> int:
    """The status for what imaging refused."""
    return next(code for cls, code in IMAGE_ERRORS if isinstance(exc, cls))


def error_message(body: bytes) -> str:
    """The one-line message of any error body BentoML or Starlette produced.

    BentoML answers a pydantic failure with ``{"error": "1 validation error...", "detail":
    [...]}`` and other client errors with a list ``[{"error": ...}]``; the field-level
    details are folded into the line so the client still learns which field was wrong.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip() or "bad request"
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return str(data)
    message = str(data.get("error") or data.get("detail") or "bad request")
    details = data.get("detail")
    if isinstance(details, list):
        parts = [
            f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg', '')}"
            for d in details[:3]
            if isinstance(d, dict)
        ]
        message = f"{message}: {'; '.join(parts)}" if parts else message
    return message


def one_error_shape(send: Send) -> Send:
    """Pass 1xx-3xx answers through untouched; rewrite error bodies to ``{"error": str}``."""
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
