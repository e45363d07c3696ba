"""Every kind of bad request we could think of, against one real ``bentoml serve``.

Each case is a raw HTTP request and the answer it must get: a 4xx with a JSON
``{"error": ...}`` body (never a 5xx, a hang or a crash). Two cases are *not* errors
and say so: a JPEG labelled image/png and an animated GIF are decoded by content
(first frame), so they are answered 200. The last test proves the server is still
healthy afterwards: a valid image gets 200 and the model's digit, and the server's
own metrics count no 5xx.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from mnist_mlops import imaging
from serving.schemas import MAX_BATCH
from serving.settings import MAX_BODY_BYTES
from support.bento_process import Served
from support.digits import animated_gif, draw_digit, encode, png_claiming_size

pytestmark = pytest.mark.slow

JSON = {"content-type": "application/json"}
METRIC = r'bentoml_service_request_total\{.*http_response_code="(\d)\d\d".*\} (\S+)'
PICKLE = {"content-type": "application/vnd.bentoml+pickle"}
NPY = {"content-type": "application/x-npy"}


@dataclass
class Case:
    """One request: ``route`` plus httpx keyword arguments, and what must come back."""

    route: str
    request: dict[str, Any] = field(default_factory=dict)
    status: int = 400
    message: str = ""  # a substring of the error message ("" = any)
    method: str = "POST"


def _digit(mode: str) -> Image.Image:
    seven = draw_digit((120, 120), (20, 15, 100, 105), width=10)
    return seven if mode == "L" else seven.convert(mode)


def _upload(data: bytes, content_type: str = "image/png", name: str = "x.png") -> dict:
    return {"files": {"image": (name, data, content_type)}}


def _npy(array: np.ndarray) -> dict:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return {"content": buffer.getvalue(), "headers": NPY}


def _pixels(values: str, count: int = 784) -> bytes:
    return b'{"pixels": [' + b", ".join([values.encode()] * count) + b"]}"


GOOD_ROW = [0] * 28
CASES: dict[str, Case] = {
    # ---- /predict: bodies that are not a usable upload
    "empty-body": Case(
        "/predict",
        {"content": b"", "headers": {"content-type": "multipart/form-data; boundary=xyz"}},
        400,
        "form",
    ),
    "empty-file": Case("/predict", _upload(b""), 400, "empty"),
    "random-bytes": Case(
        "/predict", _upload(np.random.default_rng(0).bytes(4096)), 400, "not a PNG"
    ),
    "truncated-png": Case(
        "/predict", _upload(encode(_digit("L"))[:200]), 400, "could not be decoded"
    ),
    "png-bomb-20000x20000": Case(
        "/predict", _upload(png_claiming_size(20000, 20000)), 413, "pixels"
    ),
    "one-pixel": Case("/predict", _upload(encode(Image.new("L", (1, 1), 0))), 422, "no ink"),
    "blank-page": Case("/predict", _upload(encode(Image.new("L", (64, 64), 255))), 422, "no ink"),
    "gif-first-frame-blank": Case(
        "/predict", _upload(animated_gif(first_blank=True), "image/gif", "x.gif"), 422, "no ink"
    ),
    "tiff": Case(
        "/predict", _upload(encode(_digit("L"), "TIFF"), "image/tiff", "x.tif"), 415, "TIFF"
    ),
    "svg": Case(
        "/predict",
        _upload(
            b'<svg xmlns="http://www.w3.org/2000/svg"><text>7</text></svg>',
            "image/svg+xml",
            "x.svg",
        ),
        415,
        "SVG",
    ),
    "heic": Case(
        "/predict", _upload(b"\0\0\0\x18ftypheic" + bytes(64), "image/heic", "x.heic"), 415, "HEIC"
    ),
    "30mb-upload": Case("/predict", _upload(b"\x89PNG" + bytes(30 << 20)), 413, "limit"),
    "raw-png-not-multipart": Case(
        "/predict",
        {"content": encode(_digit("L")), "headers": {"content-type": "image/png"}},
        415,
        "multipart",
    ),
    "json-to-upload-route": Case("/predict", {"json": {"image": "x"}}, 415, "multipart"),
    "wrong-field-name": Case(
        "/predict", {"files": {"photo": ("x.png", b"\x89PNG")}}, 400, "'image'"
    ),
    "two-files": Case(
        "/predict", {"files": [("image", ("a.png", b"1")), ("image", ("b.png", b"2"))]}, 400
    ),
    "text-not-file": Case(
        "/predict", {"files": {"image": (None, "http://127.0.0.1:1/x.png")}}, 400, "file upload"
    ),
    "broken-multipart": Case(
        "/predict",
        {
            "content": b"--abc\r\nContent-Disposition: form-da",
            "headers": {"content-type": "multipart/form-data; boundary=abc"},
        },
        400,
    ),
    "pickle-to-upload-route": Case(
        "/predict", {"content": b"\x80\x05N.", "headers": PICKLE}, 415, "pickle"
    ),
    # ---- /predict_array and /predict_batch: JSON that is not a pixel array
    "array-empty-body": Case("/predict_array", {"content": b"", "headers": JSON}),
    "array-not-json": Case("/predict_array", {"content": b"this is not json", "headers": JSON}),
    "array-missing-field": Case("/predict_array", {"json": {}}),
    "array-top-level-list": Case("/predict_array", {"json": [0] * 784}),
    "array-empty": Case("/predict_array", {"json": {"pixels": []}}),
    "array-ragged": Case("/predict_array", {"json": {"pixels": [GOOD_ROW] * 27 + [[0] * 5]}}),
    "array-nested-too-deep": Case("/predict_array", {"json": {"pixels": [[GOOD_ROW]] * 28}}),
    "array-strings": Case("/predict_array", {"json": {"pixels": ["ink"] * 784}}),
    "array-string-body": Case("/predict_array", {"json": {"pixels": "abc"}}),
    "array-nan": Case("/predict_array", {"content": _pixels("NaN"), "headers": JSON}),
    "array-infinity": Case("/predict_array", {"content": _pixels("Infinity"), "headers": JSON}),
    "array-huge-number": Case("/predict_array", {"content": _pixels("1e400"), "headers": JSON}),
    "array-over-255": Case("/predict_array", {"json": {"pixels": [300] * 784}}),
    "array-negative": Case("/predict_array", {"json": {"pixels": [-1] * 784}}),
    "array-783-values": Case("/predict_array", {"json": {"pixels": [0] * 783}}),
    "array-785-values": Case("/predict_array", {"json": {"pixels": [0] * 785}}),
    "array-booleans-and-null": Case("/predict_array", {"json": {"pixels": [None] * 784}}),
    "array-too-large-body": Case(
        "/predict_array",
        {"content": b"[" + b"0," * MAX_BODY_BYTES + b"0]", "headers": JSON},
        413,
        "limit",
    ),
    "array-pickle": Case(
        "/predict_array", {"content": b"\x80\x05N.", "headers": PICKLE}, 415, "pickle"
    ),
    "batch-empty": Case("/predict_batch", {"json": {"images": []}}),
    "batch-too-many-images": Case(
        "/predict_batch", {"json": {"images": [[0] * 784] * (MAX_BATCH + 1)}}
    ),
    "batch-one-bad-image": Case("/predict_batch", {"json": {"images": [[0] * 784, [0] * 10]}}),
    "batch-not-a-list": Case("/predict_batch", {"json": {"images": {"a": 1}}}),
    # ---- /predict_npy: bodies that are not a usable .npy batch
    "npy-empty-body": Case("/predict_npy", {"content": b"", "headers": NPY}, 400, "not a .npy"),
    "npy-not-npy": Case(
        "/predict_npy", {"content": b"7" * 1000, "headers": NPY}, 400, "not a .npy"
    ),
    "npy-png": Case(
        "/predict_npy", {"content": encode(_digit("L")), "headers": NPY}, 400, "not a .npy"
    ),
    "npy-truncated": Case(
        "/predict_npy",
        {"content": _npy(np.zeros((4, 784), np.uint8))["content"][:-100], "headers": NPY},
        400,
        "truncated",
    ),
    "npy-pickled-objects": Case(
        "/predict_npy", _npy(np.array([[{"x": 1}] * 784] * 2, dtype=object)), 400, "dtype"
    ),
    "npy-strings": Case("/predict_npy", _npy(np.array([["0"] * 784])), 400, "dtype"),
    "npy-one-image-without-batch-axis": Case(
        "/predict_npy", _npy(np.zeros((28, 28))), 400, "shape"
    ),
    "npy-wrong-shape": Case("/predict_npy", _npy(np.zeros((3, 32, 32))), 400, "shape"),
    "npy-no-images": Case("/predict_npy", _npy(np.zeros((0, 784))), 400, "no images"),
    "npy-nan": Case("/predict_npy", _npy(np.full((2, 784), np.nan)), 400, "NaN"),
    "npy-over-255": Case("/predict_npy", _npy(np.full((2, 784), 300.0)), 400, "0..255"),
    "npy-over-the-batch-bound": Case(
        "/predict_npy", _npy(np.zeros((MAX_BATCH + 1, 784), np.uint8)), 413, "over the limit"
    ),
    "npy-as-json": Case("/predict_npy", {"json": {"images": [[0] * 784]}}, 415, "x-npy"),
    "npy-pickle-media-type": Case(
        "/predict_npy", {"content": b"\x80\x05N.", "headers": PICKLE}, 415, "pickle"
    ),
    # ---- routes and methods
    "get-on-post-route": Case("/predict_array", {}, 405, method="GET"),
    "unknown-route": Case("/predict_everything", {"json": {}}, 404),
}
# Not errors: decoded by content, whatever the label or the number of frames.
ACCEPTED = {
    "jpeg-labelled-png": _upload(encode(_digit("L"), "JPEG", quality=90), "image/png"),
    "animated-gif": _upload(animated_gif(first_blank=False), "image/gif", "x.gif"),
    "rgba-png": _upload(encode(_digit("RGB").convert("RGBA"))),
}


@pytest.fixture(scope="module")
def client(served_model: Served) -> Iterator[httpx.Client]:
    """The session's shared server (tests/serving/conftest.py), as an httpx client."""
    with httpx.Client(base_url=served_model.url, timeout=30) as c:
        yield c


def test_every_status_answered_is_documented_for_its_route(client: httpx.Client):
    # The OpenAPI document is the contract: each case's status must be in it, with the
    # error body schema (a client generated from the document must understand the answer).
    paths = client.get("/docs.json").json()["paths"]
    for name, case in CASES.items():
        if case.route not in paths or case.method != "POST":
            continue
        responses = paths[case.route]["post"]["responses"]
        assert str(case.status) in responses, name
        schema = responses[str(case.status)]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, name


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_request_gets_a_json_4xx(client: httpx.Client, case: Case):
    response = client.request(case.method, case.route, **case.request)
    assert response.status_code == case.status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    assert case.message in body["error"]


@pytest.mark.parametrize("name", ACCEPTED, ids=ACCEPTED.keys())
def test_mislabelled_or_animated_images_are_decoded_by_content(client, name, offline_logits):
    response = client.post("/predict", **ACCEPTED[name])
    assert response.status_code == 200, response.text
    data = ACCEPTED[name]["files"]["image"][1]
    expected = offline_logits(imaging.preprocess_image(data)[None])[0]
    assert response.json()["digit"] == int(expected.argmax())


def test_after_all_bad_requests_a_valid_one_still_works(client, digit_png, offline_logits):
    # Runs after the cases above (pytest keeps file order): same server, still healthy.
    response = client.post("/predict", files={"image": ("digit.png", digit_png, "image/png")})
    assert response.status_code == 200, response.text
    expected = offline_logits(imaging.preprocess_image(digit_png)[None])[0]
    assert response.json()["digit"] == int(expected.argmax())
    assert client.get("/readyz").status_code == 200
    codes: dict[str, float] = {}
    for line in client.get("/metrics").text.splitlines():
        if m := re.match(METRIC, line):
            codes[m[1]] = codes.get(m[1], 0.0) + float(m[2])
    assert codes.get("5", 0.0) == 0.0, json.dumps(codes)
