"""The HTTP side of the ``@bentoml.api`` methods, without BentoML's per-request dispatch.

Why: a profile of the worker under load (issue 11) showed BentoML's API layer costing
more CPU per request than the model and our own layers: on every call it re-reads the
method's ``inspect.signature``, resolves injected settings, copies an upload to a temp
file, re-parses a form the guard had already parsed, and wraps the answer in a
streaming response. bench/serve_load.py measures what skipping it buys (its CPU column).

What stays BentoML's: the APIs are still declared with ``@bentoml.api``, so BentoML still
builds the input models, the OpenAPI document and the Python-side methods, and its
outer middleware (request metrics, access log, timeout) still wraps every request.
:class:`serving.guard.RequestGuard`, having bounded the body (and parsed the upload
form), hands a predict request here: the body is validated with the very input model
BentoML built from the method's signature (so the same 400s), the same service method
runs (for uploads :meth:`~serving.service.MnistClassifier.classify_upload`, which
``predict`` wraps), and its pydantic answer goes out as JSON. A bug gets BentoML's answer
too: logged, and a 500 with a JSON error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import bentoml
from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from serving.errors import error_response

logger = logging.getLogger(__name__)
INTERNAL_ERROR = "An unexpected error has occurred, please check the server log."


@dataclass(frozen=True)
class UploadForm:
    """/predict's form, already checked by the guard: the image bytes and the flag."""

    image: bytes
    return_input: bool


class Endpoints:
    """Route -> the service's API method (its plain function: BentoML's bound method
    re-reads the signature on every access) and input model."""

    def __init__(self, service: bentoml.Service[Any]) -> None:
        self.apis = {api.route: (api.func, api.input_spec) for api in service.apis.values()}
        self._instance: Any = None

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, body: bytes | UploadForm
    ) -> None:
        """Answer ``scope``'s predict request, whose body the guard has read."""
        if self._instance is None:  # set by BentoML when the app starts, before any request
            self._instance = bentoml.get_current_service()
        try:
            answer = await self._answer(scope["path"], body)
        except Exception:
            logger.exception("%s failed", scope["path"])
            answer = error_response(500, INTERNAL_ERROR)
        if isinstance(answer, BaseModel):
            answer = Response(answer.model_dump_json(), media_type="application/json")
        await answer(scope, receive, send)

    async def _answer(self, route: str, body: bytes | UploadForm) -> Any:
        method, input_model = self.apis[route]
        if isinstance(body, UploadForm):
            return await self._instance.classify_upload(body.image, body.return_input)
        try:
            request = input_model.model_validate_json(body)
        except ValidationError as exc:  # BentoML's own answer; the guard rewrites it
            details = exc.errors(include_context=False, include_input=False, include_url=False)
            return JSONResponse(
                {"error": f"{exc.error_count()} validation error for {exc.title}",
                 "detail": details},
                status_code=400,
            )  # fmt: skip
        fields = {k: getattr(request, k) for k in type(request).model_fields}
        return await method(self._instance, **fields)
