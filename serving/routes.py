"""The API routes the front answers: what body each takes, and which service method runs.

Each :class:`Route` pairs a path with the media type(s) it accepts, a parser that turns
the already-read body into the method's keyword arguments (raising
:class:`~serving.errors.ServiceError` 400 when it cannot), and the method itself (a plain
function of the service class, called with the instance). JSON routes validate with the
input model BentoML built from the ``@bentoml.api`` signature, so the OpenAPI document and
the checks cannot disagree; upload routes read the multipart form once, here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import bentoml
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Scope

from serving.errors import ServiceError

Method = Callable[..., Awaitable[BaseModel | Response]]
Parser = Callable[[Scope, bytes], Awaitable[dict[str, Any]]]
FORM_FIELDS = {"image", "return_input"}  # an upload route's form; 'image' required


@dataclass(frozen=True)
class Route:
    """One POST endpoint: ``path`` takes a body of ``media_types`` and runs ``method``."""

    path: str
    media_types: tuple[str, ...]
    parse: Parser  # body -> the method's keyword arguments
    method: Method  # an unbound function of the service class
    hint: str  # how to send the body, for the 415 answer
    answers: tuple[str, ...] = ("application/json",)  # what it can answer; first = default


def json_route(service: bentoml.Service[Any], name: str) -> Route:
    """The ``@bentoml.api`` method ``name``, its JSON body checked by BentoML's input model."""
    api = service.apis[name]
    model: type[BaseModel] = api.input_spec

    async def parse(_: Scope, body: bytes) -> dict[str, Any]:
        try:
            request = model.model_validate_json(body)
        except ValidationError as exc:
            raise ServiceError(400, _validation_message(exc)) from None
        return {key: getattr(request, key) for key in type(request).model_fields}

    return Route(api.route, ("application/json",), parse, api.func, "send JSON")


def upload_route(service: bentoml.Service[Any], name: str, method: Method) -> Route:
    """API ``name``'s multipart form (one file ``image``, maybe ``return_input``) ->
    ``method(data, return_input)``: the bytes go straight to the method (BentoML's own
    dispatch would copy the upload to a temporary file and parse the form again)."""
    hint = "send the image as multipart/form-data with a file field named 'image'"
    return Route(service.apis[name].route, ("multipart/form-data",), _read_form, method, hint)


def binary_route(
    service: bentoml.Service[Any],
    name: str,
    method: Method,
    media_types: tuple[str, ...],
    answers: tuple[str, ...] = ("application/json",),
) -> Route:
    """API ``name``'s raw body, of one of ``media_types`` -> ``method(data, answer)``, where
    ``answer`` is the one of ``answers`` the request's ``Accept`` header prefers."""

    async def parse(scope: Scope, body: bytes) -> dict[str, Any]:
        return {"data": body, "answer": preferred_answer(scope, answers)}

    hint = "send the file itself as the body"
    return Route(service.apis[name].route, media_types, parse, method, hint, answers)


def preferred_answer(scope: Scope, answers: tuple[str, ...]) -> str:
    """The media type of ``answers`` that the ``Accept`` header rates highest.

    Ties, wildcards and a header naming none of them go to ``answers[0]`` (JSON): a client
    gets the binary answer only by asking for it, and an odd Accept header never turns a
    request into an error (RFC 9110 lets a server ignore it).
    """
    rated = []
    for part in Headers(scope=scope).get("accept", "").split(","):
        kind, *params = (p.strip().lower() for p in part.split(";"))
        if kind in answers and (quality := _quality(params)) > 0:
            rated.append((quality, -answers.index(kind), kind))  # a tie: the earlier answer
    return max(rated)[2] if rated else answers[0]


def _quality(params: list[str]) -> float:
    """An Accept entry's ``q`` (1 when absent; a malformed one counts as 0, refused)."""
    for param in params:
        key, _, value = param.partition("=")
        if key.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def _validation_message(exc: ValidationError) -> str:
    """pydantic's errors as one line: the count, then up to three ``field: problem``."""
    details = exc.errors(include_context=False, include_input=False, include_url=False)
    parts = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[:3])
    return f"{exc.error_count()} validation error for {exc.title}: {parts}"


async def _read_form(scope: Scope, body: bytes) -> dict[str, Any]:
    """The form's ``data`` (the file's bytes) and ``return_input``, or a 400 saying why not."""
    request = Request(scope, receive=_replay(body))
    try:
        form = await request.form(max_files=1, max_fields=len(FORM_FIELDS))
    except Exception as exc:  # starlette raises several types for broken multipart
        message = f"malformed multipart/form-data body: {getattr(exc, 'detail', exc)}"
        raise ServiceError(400, message) from None
    try:
        keys = list(form.keys())
        if "image" not in keys or not set(keys) <= FORM_FIELDS or len(keys) != len(set(keys)):
            message = (
                f"the form must hold a file field 'image' (and maybe 'return_input'); got {keys}"
            )
            raise ServiceError(400, message)
        if not isinstance(form["image"], UploadFile):
            message = "the 'image' field must be a file upload (curl -F image=@digit.png), not text"
            raise ServiceError(400, message)
        flag = form.get("return_input")
        if flag is not None and (not isinstance(flag, str) or flag not in ("true", "false")):
            raise ServiceError(400, "the 'return_input' field must be the text 'true' or 'false'")
        return {"data": await form["image"].read(), "return_input": flag == "true"}
    finally:
        await form.close()


def media_type(scope: Scope) -> str:
    """The request's Content-Type without parameters, lower case ('' when absent)."""
    return Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()


def _replay(body: bytes) -> Callable[[], Awaitable[Message]]:
    """A ``receive`` that hands Starlette's form parser the body already read."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
