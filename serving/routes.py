"""The route table, and how the front reads each route's body.

:data:`API_ROUTES` is the one list of the API: each route's path (the ``@bentoml.api``
decorators take it from here) and method, how its body is read, the ``source`` its answers
carry in the inference log, and the statuses it answers besides 200 (the OpenAPI document's).
:func:`front_routes` turns each row into a :class:`Route` for :class:`serving.front.ApiFront`:
the media type(s) it accepts, a parser that turns the already-read body into the keyword
arguments of the route's ``@bentoml.api`` method (raising :class:`~serving.errors.ServiceError`
400 when it cannot), and that method. JSON bodies are validated with the input model of the
method's ``@bentoml.api`` (so the OpenAPI document and the checks cannot disagree); forms
are read once, here; files reach the method as bytes (no temporary file). /feedback's
method also gets who sent the request (its rate bound is per client).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import bentoml
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Scope

from serving.errors import PREDICT_ERROR_STATUSES, ServiceError
from serving.feedback import FEEDBACK_ERROR_HEADERS, FEEDBACK_ERROR_STATUSES
from serving.negotiation import preferred_answer
from serving.peers import peer_host
from serving.schemas import NPY_MEDIA_TYPES

Method = Callable[..., Awaitable[BaseModel | Response]]
Parser = Callable[[Scope, bytes], Awaitable[dict[str, Any]]]
FORM = "multipart/form-data"
UI_SOURCE = "ui"
UI_HEADER = (b"x-mnist-source", b"ui")  # the /ui page sends it; other values are ignored
PYTHON_SOURCE = "python"  # the source of a direct Python call (no HTTP route)


@dataclass(frozen=True)
class ApiRoute:
    """One row of the route table: what the front, the log and the OpenAPI document need."""

    path: str
    method: str  # the service's @bentoml.api method (its decorator takes ``path`` from here)
    body: Literal["json", "upload", "npy"]  # JSON, a form with one file, an .npy (or a form)
    source: str | None  # records.SOURCES: the log's source for its answers; None: not logged
    statuses: Mapping[int, str]  # every answer besides 200, for the OpenAPI document
    # status -> header -> what it says, for the OpenAPI document (/feedback's Retry-After)
    error_headers: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    peer: bool = False  # the method takes ``peer`` and ``forwarded_for`` (a bound per client)


# fmt: off
PREDICT = ApiRoute("/predict", "predict", "upload", "upload", PREDICT_ERROR_STATUSES)
PREDICT_ARRAY = ApiRoute("/predict_array", "predict_array", "json", "json", PREDICT_ERROR_STATUSES)
PREDICT_BATCH = ApiRoute("/predict_batch", "predict_batch", "json", "batch", PREDICT_ERROR_STATUSES)
PREDICT_NPY = ApiRoute("/predict_npy", "predict_npy", "npy", "npy", PREDICT_ERROR_STATUSES)
FEEDBACK = ApiRoute("/feedback", "feedback", "json", None, FEEDBACK_ERROR_STATUSES,
                    FEEDBACK_ERROR_HEADERS, peer=True)
# fmt: on
API_ROUTES = (PREDICT, PREDICT_ARRAY, PREDICT_BATCH, PREDICT_NPY, FEEDBACK)


@dataclass(frozen=True)
class Route:
    """One POST endpoint as the front answers it: ``path`` takes a body of ``media_types``
    and runs ``method`` (an unbound ``@bentoml.api`` function of the service class)."""

    path: str
    media_types: tuple[str, ...]
    parse: Parser  # body -> the method's keyword arguments
    method: Method
    hint: str  # how to send the body, for the 415 answer
    statuses: Mapping[int, str]  # the table's, for the OpenAPI document
    answers: tuple[str, ...] = ("application/json",)  # what it can answer; first = default
    error_headers: Mapping[int, Mapping[str, str]] = field(default_factory=dict)  # the table's


def front_routes(
    service: bentoml.Service[Any], table: tuple[ApiRoute, ...] = API_ROUTES, client_header: str = ""
) -> tuple[Route, ...]:
    """Each row bound to its ``@bentoml.api`` method (``client_header``: a canary's key)."""
    return tuple(_route(row, service.apis[row.method], client_header) for row in table)


def _route(row: ApiRoute, api: Any, client_header: str) -> Route:
    spec: type[BaseModel] = api.input_spec
    answers: tuple[str, ...] = ("application/json",)
    if row.body == "json":
        parse, media, hint = _json_parser(spec), ("application/json",), "send JSON"
    else:  # the file field of the input model: what BentoML's client sends as a form
        (field,) = api.input_spec.multipart_fields
        parse = _form_parser(field, set(spec.model_fields) - {field})
        media, hint = (FORM,), f"send the image as {FORM} with a file field named {field!r}"
    if row.body == "npy":
        parse, answers = _npy_parser(field, parse), (*answers, NPY_MEDIA_TYPES[0])
        media, hint = (*NPY_MEDIA_TYPES, FORM), "send the .npy file itself as the body"
    if row.source is not None:
        parse = _with_source(parse, row.source, client_header)
    if row.peer:
        parse = _with_peer(parse)
    return Route(row.path, media, parse, api.func, hint, row.statuses, answers, row.error_headers)


def _with_source(parse: Parser, source: str, client_header: str) -> Parser:
    """``parse``, plus the log's ``source`` (``ui`` from the page) and a canary's ``client``."""

    async def parse_with_source(scope: Scope, body: bytes) -> dict[str, Any]:
        arguments = await parse(scope, body)
        arguments["source"] = UI_SOURCE if UI_HEADER in scope["headers"] else source
        arguments["client"] = Headers(scope=scope).get(client_header, "") if client_header else ""
        return arguments

    return parse_with_source


def _with_peer(parse: Parser) -> Parser:
    """``parse``, plus who sent it: the connection's ``peer`` address (before uvicorn's
    rewrite, :mod:`serving.peers`) and ``forwarded_for``, every X-Forwarded-For line
    joined in order (what the method believes of it: :mod:`serving.client_address`)."""

    async def parse_with_peer(scope: Scope, body: bytes) -> dict[str, Any]:
        arguments = await parse(scope, body)
        arguments["peer"] = peer_host(scope)
        arguments["forwarded_for"] = ",".join(Headers(scope=scope).getlist("x-forwarded-for"))
        return arguments

    return parse_with_peer


def _json_parser(model: type[BaseModel]) -> Parser:
    """The body checked by the method's input model -> its fields as keyword arguments."""

    async def parse(_: Scope, body: bytes) -> dict[str, Any]:
        try:
            request = model.model_validate_json(body)
        except ValidationError as exc:
            raise ServiceError(400, _validation_message(exc)) from None
        return {key: getattr(request, key) for key in type(request).model_fields}

    return parse


def _npy_parser(field: str, read_form: Parser) -> Parser:
    """The raw ``.npy`` body (curl, httpx) or a form with it as file ``field`` (BentoML's
    client) -> ``{field: bytes, "answer": ...}``, ``answer`` the ``Accept`` header's pick."""
    answers = ("application/json", NPY_MEDIA_TYPES[0])

    async def parse(scope: Scope, body: bytes) -> dict[str, Any]:
        if media_type(scope) == FORM:
            arguments = await read_form(scope, body)
        else:
            arguments = {field: body}
        return {**arguments, "answer": preferred_answer(scope, answers)}

    return parse


def _validation_message(exc: ValidationError) -> str:
    """pydantic's errors as one line: the count, then up to three ``field: problem``."""
    details = exc.errors(include_context=False, include_input=False, include_url=False)
    parts = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[:3])
    return f"{exc.error_count()} validation error for {exc.title}: {parts}"


def _form_parser(file_field: str, flags: set[str]) -> Parser:
    """A form of one file ``file_field`` and maybe the true/false fields ``flags`` ->
    ``{file_field: the file's bytes, flag: bool...}``, or a 400 saying why not."""
    allowed = {file_field, *flags}

    async def parse(scope: Scope, body: bytes) -> dict[str, Any]:
        request = Request(scope, receive=_replay(body))
        try:
            form = await request.form(max_files=1, max_fields=len(allowed))
        except Exception as exc:  # starlette raises several types for broken multipart
            message = f"malformed multipart/form-data body: {getattr(exc, 'detail', exc)}"
            raise ServiceError(400, message) from None
        try:
            keys = list(form.keys())
            if file_field not in keys or not set(keys) <= allowed or len(keys) != len(set(keys)):
                extra = f" (and maybe {', '.join(map(repr, sorted(flags)))})" if flags else ""
                message = f"the form must hold a file field {file_field!r}{extra}; got {keys}"
                raise ServiceError(400, message)
            if not isinstance(form[file_field], UploadFile):
                message = (
                    f"the {file_field!r} field must be a file upload "
                    f"(curl -F {file_field}=@file), not text"
                )
                raise ServiceError(400, message)
            arguments: dict[str, Any] = {file_field: await form[file_field].read()}
            for flag in flags:
                value = form.get(flag)
                if value is not None and (
                    not isinstance(value, str) or value not in ("true", "false")
                ):
                    raise ServiceError(
                        400, f"the {flag!r} field must be the text 'true' or 'false'"
                    )
                if value is not None:
                    arguments[flag] = value == "true"
            return arguments
        finally:
            await form.close()

    return parse


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
