"""The OpenAPI document as the contract: BentoML's, plus every error status with its real body.

BentoML documents each API with 200 and three exception schemas whose ``detail`` is a
string; the service really answers the statuses in :data:`serving.errors.ERROR_STATUSES`,
always as :class:`~serving.schemas.ErrorBody`. :func:`openapi_document` rewrites the API
operations' responses to say exactly that; the request guard serves it at ``/docs.json``.
"""

from __future__ import annotations

from typing import Any

import bentoml

from serving.errors import ERROR_STATUSES
from serving.feedback import ERROR_STATUSES as FEEDBACK_ERRORS
from serving.feedback import FEEDBACK_ROUTE
from serving.schemas import ErrorBody

ERROR_REF = "#/components/schemas/ErrorBody"


def openapi_document(service: bentoml.Service[Any]) -> dict[str, Any]:
    """``service``'s OpenAPI document with the API operations' error answers made true."""
    doc = service.openapi_spec.asdict()
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    error = {"application/json": {"schema": {"$ref": ERROR_REF}}}
    routes = {api.route for api in service.apis.values()}
    for route, item in doc.get("paths", {}).items():
        if route not in routes or "post" not in item:
            continue
        body = item["post"].setdefault("requestBody", {})
        body["required"] = True
        form = body.get("content", {}).get("multipart/form-data", {}).get("schema")
        if form is not None:  # the guard refuses fields other than 'image' and 'return_input'
            form["additionalProperties"] = False
        responses = item["post"]["responses"]
        for status in [s for s in responses if str(s) != "200"]:
            del responses[status]
        statuses = FEEDBACK_ERRORS if route == FEEDBACK_ROUTE else ERROR_STATUSES
        for status, description in statuses.items():
            responses[str(status)] = {"description": description, "content": error}
    return doc
