"""The OpenAPI document as the contract: BentoML's, made to say what the front really does.

BentoML documents each API with 200 and three exception schemas whose ``detail`` is a
string, and each request body with the one media type of its signature. The front
(:mod:`serving.front`) answers the statuses its route table gives each route
(:data:`serving.routes.API_ROUTES`), always as :class:`~serving.schemas.ErrorBody` with
the headers the table names (/feedback's 429: ``Retry-After``), and takes the media types
of its routes (``/predict_npy``: the raw file, or a form). :func:`openapi_document`
rewrites the API operations to say exactly that; the front serves it at ``/docs.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bentoml

from serving.predictions import IDENTITY_HEADERS, NPY_ANSWER_DTYPE
from serving.routes import FORM, Route
from serving.schemas import ErrorBody, Prediction

ERROR_REF = "#/components/schemas/ErrorBody"
BENTOML_ONLY_KEYS = ("root_input",)  # BentoML's own marks in a schema, not JSON Schema
RAW_FILE = {"type": "string", "format": "binary"}  # a body that is the file itself
BINARY_ANSWER = {
    "type": "string",
    "format": "binary",
    "description": "with Accept: application/x-npy, an .npy file (numpy.load, no pickle) of "
    f"one row per image in the order sent, dtype {NPY_ANSWER_DTYPE.descr}",
}


def openapi_document(service: bentoml.Service[Any], routes: tuple[Route, ...]) -> dict[str, Any]:
    """``service``'s OpenAPI document with the front's ``routes``' bodies and errors made true."""
    doc = service.openapi_spec.asdict()
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    error = {"application/json": {"schema": {"$ref": ERROR_REF}}}
    paths = doc.get("paths", {})
    for route in routes:
        operation = paths[route.path]["post"]
        body = operation.setdefault("requestBody", {})
        body["required"] = True
        (schema,) = body.get("content", {}).values()  # the one media type BentoML knows
        for key in BENTOML_ONLY_KEYS:
            schema.get("schema", {}).pop(key, None)
        if FORM in route.media_types:  # the form takes no other fields
            schema["schema"]["additionalProperties"] = False
        body["content"] = {
            media_type: schema if media_type in (FORM, "application/json") else {"schema": RAW_FILE}
            for media_type in route.media_types
        }
        responses = operation["responses"]
        for status in [s for s in responses if str(s) != "200"]:
            del responses[status]
        (ok,) = (answer for status, answer in responses.items() if str(status) == "200")
        for media_type in route.answers[1:]:  # a binary answer, asked for with Accept
            ok.setdefault("content", {})[media_type] = {"schema": BINARY_ANSWER}
            ok["headers"] = identity_headers()
        for status, description in route.statuses.items():
            responses[str(status)] = {"description": description, "content": error}
            if status in route.error_headers:
                responses[str(status)]["headers"] = error_headers(route.error_headers[status])
    return doc


def error_headers(headers: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """An error's headers (name -> meaning), each a whole number of seconds or more: so far
    only ``Retry-After``, which the service always writes as delay-seconds, never a date."""
    return {
        name: {"description": meaning, "schema": {"type": "integer", "minimum": 1}}
        for name, meaning in headers.items()
    }


def identity_headers() -> dict[str, dict[str, Any]]:
    """The binary answer's headers, each documented as the JSON answer's field it carries."""
    fields = Prediction.model_fields
    return {
        header: {"description": f"the binary answer's {key}: {fields[key].description}",
                 "schema": {"type": "string"}}
        for key, header in IDENTITY_HEADERS.items()
    }  # fmt: skip
