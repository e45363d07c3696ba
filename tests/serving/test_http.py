"""End to end through a real ``bentoml serve``: status codes, JSON bodies, health and metrics.

Against the session's shared server (``served_model`` in tests/serving/conftest.py):
start-up takes seconds, and these tests only send requests.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from mnist_mlops import imaging
from serving.schemas import MAX_BATCH
from support.bento_process import Served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(served_model: Served) -> Iterator[httpx.Client]:
    """The running ``bentoml serve serving.service:MnistClassifier``, as an httpx client."""
    with httpx.Client(base_url=served_model.url, timeout=10) as client:
        yield client


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and isinstance(body["error"], str) and body["error"]
    return body["error"]


def test_predict_png_matches_offline_prediction(server, digit_png, offline_logits):
    response = server.post("/predict", files={"image": ("digit.png", digit_png, "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = offline_logits(imaging.preprocess_image(digit_png)[None])[0]
    assert body["digit"] == int(expected.argmax())
    assert len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert len(body["model_version"]) == 12
    assert body["model_precision"] == "float32"  # MNIST_MODEL_PATH names the float model


@pytest.mark.parametrize(
    ("files", "status", "message"),
    [
        ({"image": ("x.png", b"definitely not an image", "image/png")}, 400, "not a PNG"),
        ({"image": ("x.tif", b"II*\x00" + bytes(64), "image/tiff")}, 415, "TIFF"),
        ({"photo": ("x.png", b"\x89PNG", "image/png")}, 400, "'image'"),
        ({"image": (None, "http://127.0.0.1:1/x.png")}, 400, "file upload"),
    ],
    ids=["junk", "tiff", "wrong-field", "text-instead-of-file"],
)
def test_predict_bad_uploads(server, files, status, message):
    assert message in assert_error(server.post("/predict", files=files), status)


def test_predict_blank_image_is_422(server, encode_image):
    blank = encode_image(Image.new("L", (64, 64), 255))
    response = server.post("/predict", files={"image": ("blank.png", blank, "image/png")})
    assert "no ink" in assert_error(response, 422)


def test_predict_wrong_content_type_and_oversized_body(server, digit_png):
    raw = server.post("/predict", content=digit_png, headers={"content-type": "image/png"})
    assert "multipart" in assert_error(raw, 415)
    big = {"image": ("big.png", b"\x89PNG" + bytes(imaging.MAX_BYTES + (2 << 20)), "image/png")}
    assert "limit" in assert_error(server.post("/predict", files=big), 413)


def test_predict_array_and_batch(server, offline_logits, stroke_pixels):
    pixels = stroke_pixels
    nested = server.post("/predict_array", json={"pixels": pixels.tolist()})
    flat = server.post("/predict_array", json={"pixels": pixels.ravel().tolist()})
    assert nested.status_code == flat.status_code == 200, nested.text
    one, two = nested.json(), flat.json()
    assert one.pop("request_id") != two.pop("request_id")  # each its own id in the log
    assert one == two
    assert nested.json()["digit"] == int(offline_logits(pixels[None])[0].argmax())

    images = [pixels.tolist(), np.flipud(pixels).ravel().tolist(), np.zeros(784).tolist()]
    batch = server.post("/predict_batch", json={"images": images})
    assert batch.status_code == 200, batch.text
    predictions = batch.json()["predictions"]
    expected = offline_logits(np.stack([np.asarray(i, np.float32).reshape(28, 28) for i in images]))
    assert [p["digit"] for p in predictions] == expected.argmax(axis=1).tolist()


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/predict_array", b'{"pixels": [1, 2, 3]}'),
        ("/predict_array", b'{"pixels": [' + b"NaN, " * 783 + b"NaN]}"),
        ("/predict_array", b'{"pixels": [' + b"300, " * 783 + b"0]}"),
        ("/predict_array", b'{"pixels": "abc"}'),
        ("/predict_array", b"this is not json"),
        ("/predict_array", b"{}"),
        ("/predict_batch", b'{"images": []}'),
        ("/predict_batch", b'{"images": [[' + b"0, " * 783 + b"0]]" + b", [0]" * 256 + b"]}"),
    ],
    ids=["short", "nan", "over-255", "string", "not-json", "missing", "empty-batch", "257-images"],
)
def test_bad_json_is_400(server, route, body):
    response = server.post(route, content=body, headers={"content-type": "application/json"})
    assert_error(response, 400)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("media_type", ["application/x-npy", "application/octet-stream"])
def test_predict_npy_answers_as_the_json_batch_does(server, offline_logits, media_type):
    # The same pixels as an .npy body and as JSON: the same predictions, in the same order.
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(MAX_BATCH, 28, 28), dtype=np.uint8)
    pixels[0] = 0  # a blank image is a valid input here (used as is)
    binary = server.post("/predict_npy", content=_npy(pixels), headers={"content-type": media_type})
    batch = server.post("/predict_batch", json={"images": pixels.tolist()})
    assert binary.status_code == batch.status_code == 200, binary.text
    assert _without_ids(binary.json()) == _without_ids(batch.json())
    digits = [p["digit"] for p in binary.json()["predictions"]]
    assert digits == offline_logits(pixels.astype(np.float32)).argmax(axis=1).tolist()
    flat = server.post(
        "/predict_npy",
        content=_npy(pixels[:5].reshape(5, 784).astype(np.float32)),
        headers={"content-type": media_type},
    )
    assert _without_ids(flat.json()) == _without_ids(binary.json())[:5]


NPY_ANSWER = {"content-type": "application/x-npy", "accept": "application/x-npy"}


def test_predict_npy_answers_an_npy_when_asked(server, offline_logits):
    # Accept: application/x-npy: the same answers as the JSON one, as a structured .npy
    # that numpy reads without pickle; the model version in a header.
    pixels = np.random.default_rng(5).integers(0, 256, size=(MAX_BATCH, 28, 28), dtype=np.uint8)
    binary = server.post("/predict_npy", content=_npy(pixels), headers=NPY_ANSWER)
    plain = server.post("/predict_npy", content=_npy(pixels), headers=NPY_ANSWER | {"accept": ""})
    assert binary.status_code == plain.status_code == 200, binary.text
    assert binary.headers["content-type"] == "application/x-npy"
    rows = np.load(io.BytesIO(binary.content), allow_pickle=False)
    assert rows.shape == (MAX_BATCH,)
    assert rows.dtype.names == ("digit", "probabilities", "request_id")
    expected = plain.json()["predictions"]
    assert rows["digit"].tolist() == [p["digit"] for p in expected]
    assert rows["digit"].tolist() == offline_logits(pixels.astype(np.float32)).argmax(1).tolist()
    np.testing.assert_allclose(
        rows["probabilities"], [p["probabilities"] for p in expected], rtol=1e-6, atol=1e-7
    )
    assert binary.headers["x-model-version"] == expected[0]["model_version"]
    assert binary.headers["x-model-precision"] == expected[0]["model_precision"] == "float32"
    ids = [i.decode() for i in rows["request_id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == MAX_BATCH


@pytest.mark.parametrize(
    ("accept", "answer"),
    [
        ("application/json, application/x-npy", "application/json"),  # a tie: JSON
        ("application/json;q=0.5, application/x-npy", "application/x-npy"),
        ("application/x-npy;q=0, application/json", "application/json"),
        ("*/*", "application/json"),
        ("text/html", "application/json"),  # nothing we make: JSON, never a 406
        ("application/x-npy;q=junk", "application/json"),
    ],
)
def test_predict_npy_answers_json_unless_npy_is_preferred(server, accept, answer):
    body = _npy(np.zeros((2, 28, 28), np.uint8))
    headers = {"content-type": "application/x-npy", "accept": accept}
    response = server.post("/predict_npy", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == answer


def test_a_refused_npy_body_is_a_json_error_even_when_npy_is_asked_for(server):
    bad = _npy(np.full((2, 28, 28), np.nan, np.float32))
    message = assert_error(server.post("/predict_npy", content=bad, headers=NPY_ANSWER), 400)
    assert "NaN or infinity" in message


def test_return_input_over_http(server, digit_png, stroke_pixels):
    form = server.post(
        "/predict",
        files={"image": ("d.png", digit_png, "image/png")},
        data={"return_input": "true"},
    )
    array = server.post(
        "/predict_array", json={"pixels": stroke_pixels.tolist(), "return_input": True}
    )
    batch = server.post(
        "/predict_batch", json={"images": [stroke_pixels.tolist()], "return_input": True}
    )
    assert form.status_code == array.status_code == batch.status_code == 200
    expected = imaging.to_uint8(imaging.preprocess_image(digit_png))
    np.testing.assert_array_equal(_decode_png(form.json()["model_input"]), expected)
    np.testing.assert_array_equal(_decode_png(array.json()["model_input"]), stroke_pixels)
    assert batch.json()["predictions"][0]["model_input"] == array.json()["model_input"]
    plain = server.post("/predict_array", json={"pixels": stroke_pixels.tolist()})
    assert "model_input" not in plain.json()


def _decode_png(encoded: str) -> np.ndarray:
    img = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert (img.format, img.mode, img.size) == ("PNG", "L", (28, 28))
    return np.asarray(img)


def test_health_and_metrics(server, digit_png):
    assert server.get("/livez").status_code == 200
    ready = server.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model_precision"] == "float32", ready.text
    server.post("/predict", files={"image": ("d.png", digit_png, "image/png")})
    # One refused upload of its own, so the rejection counter exists whichever tests ran first.
    assert server.post("/predict", files={"image": ("e.png", b"", "image/png")}).status_code == 400
    metrics = server.get("/metrics")
    assert metrics.status_code == 200
    assert "# TYPE" in metrics.text and "bentoml_service_request" in metrics.text
    for family in ("mnist_predictions_total", "mnist_confidence_bucket",
                   "mnist_preprocess_seconds_bucket", "mnist_rejected_requests_total"):  # fmt: skip
        assert family in metrics.text, family


def test_no_request_above_got_a_5xx(server):
    # Runs last in this module: BentoML's own metrics count responses by status code.
    counts: dict[str, float] = {}
    for line in server.get("/metrics").text.splitlines():
        if match := re.match(
            r'bentoml_service_request_total\{.*http_response_code="(\d+)".*\} (\S+)', line
        ):
            counts[match[1][0] + "xx"] = counts.get(match[1][0] + "xx", 0.0) + float(match[2])
    assert counts.get("4xx", 0) > 0
    assert counts.get("5xx", 0) == 0


def _without_ids(answer: dict) -> list[dict]:
    """A batch answer's predictions without their request ids (new for every answer)."""
    return [{k: v for k, v in p.items() if k != "request_id"} for p in answer["predictions"]]
