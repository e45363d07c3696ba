"""The service class, instantiated directly (no server): answers match ONNX Runtime offline.

The endpoints are coroutines; these tests exercise the same code paths minus HTTP. What
the service refuses is a :class:`ServiceError` (the HTTP front turns it into the answer).
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_mlops import imaging
from mnist_mlops.core.fileio import read_json, write_json
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.inference.session import softmax
from serving.errors import ServiceError
from serving.model_loading import ModelLoadError, load_model
from serving.schemas import MAX_BATCH, BatchPrediction, Prediction, example_pixels
from serving.service import MnistClassifier
from support import ROOT as REPO

EXAMPLE_PIXELS = example_pixels()


@pytest.fixture(scope="module")
def service(model_path: Path):
    """One instance, built the way BentoML builds it (``Service.__call__`` -> inner class)."""
    previous = os.environ.get("MNIST_MODEL_PATH")
    os.environ["MNIST_MODEL_PATH"] = str(model_path)
    try:
        yield MnistClassifier()
    finally:
        if previous is None:
            del os.environ["MNIST_MODEL_PATH"]
        else:
            os.environ["MNIST_MODEL_PATH"] = previous


def answer(pred: Prediction) -> dict:
    """A prediction without its request id (new for every answer)."""
    return pred.model_dump(exclude={"request_id"})


def assert_matches_offline(pred: Prediction, pixels: np.ndarray, offline_logits, version: str):
    expected = offline_logits(pixels[None])[0]
    assert isinstance(pred, Prediction)
    assert len(pred.probabilities) == 10
    assert sum(pred.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert min(pred.probabilities) >= 0.0
    assert pred.digit == int(expected.argmax())
    np.testing.assert_allclose(pred.probabilities, softmax(expected[None])[0], atol=1e-6)
    assert pred.model_version == version


def test_predict_upload_matches_offline_onnx_runtime(
    service, model_path, digit_png, tmp_path, offline_logits
):
    upload = tmp_path / "digit.png"
    upload.write_bytes(digit_png)
    version = ModelCard.read_beside(model_path).version
    pred = asyncio.run(service.predict(upload))
    assert_matches_offline(pred, imaging.preprocess_image(digit_png), offline_logits, version)


@pytest.mark.parametrize(  # decoded in the event loop / in the thread pool
    "size, box", [((300, 200), (30, 20, 130, 180)), ((1200, 900), (100, 80, 500, 800))]
)
def test_uploads_small_and_large_match_offline(
    service, model_path, make_digit, encode_image, offline_logits, size, box
):
    data = encode_image(make_digit(size=size, box=box, width=60))
    version = ModelCard.read_beside(model_path).version
    pred = asyncio.run(service.predict(data, return_input=False))
    assert_matches_offline(pred, imaging.preprocess_image(data), offline_logits, version)


def test_predict_array_nested_and_flat(service, model_path, offline_logits):
    version = ModelCard.read_beside(model_path).version
    pixels = np.asarray(EXAMPLE_PIXELS, dtype=np.float32)
    nested = asyncio.run(service.predict_array(EXAMPLE_PIXELS))
    flat = asyncio.run(service.predict_array(pixels.ravel().tolist()))
    assert_matches_offline(nested, pixels, offline_logits, version)
    assert answer(flat) == answer(nested)
    assert flat.request_id != nested.request_id  # each answer its own id in the log


def test_predict_batch_keeps_order_and_matches_single_calls(service):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size=(28, 28)).tolist() for _ in range(5)] + [EXAMPLE_PIXELS]
    out = asyncio.run(service.predict_batch(images))
    assert isinstance(out, BatchPrediction)
    singles = [asyncio.run(service.predict_array(img)) for img in images]
    assert [answer(p) for p in out.predictions] == [answer(p) for p in singles]
    ids = {p.request_id for p in out.predictions + singles}
    assert len(ids) == 2 * len(images)


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"not an image at all", 400, "not a PNG"),
        (b"II*\x00" + bytes(100), 415, "TIFF"),
        (None, 422, "no ink"),  # a blank PNG, made below
    ],
)
def test_bad_upload_is_refused_with_its_status(
    service, tmp_path, encode_image, data, status, message
):
    from PIL import Image

    upload = tmp_path / "upload"
    upload.write_bytes(data if data is not None else encode_image(Image.new("L", (40, 40), 255)))
    with pytest.raises(ServiceError) as refused:
        asyncio.run(service.predict(upload))
    assert refused.value.status == status
    assert message in refused.value.message


def test_bad_arrays_are_refused_with_400(service):
    for bad in ([0.0] * 10, [float("nan")] * 784, [[300.0] * 28] * 28):
        with pytest.raises(ServiceError) as refused:
            asyncio.run(service.predict_array(bad))
        assert refused.value.status == 400
        assert refused.value.message.startswith("pixels must")
    with pytest.raises(ServiceError) as refused:
        asyncio.run(service.predict_batch([EXAMPLE_PIXELS, [1.0, 2.0]]))
    assert refused.value.status == 400


def test_predict_npy_matches_the_json_batch(service, tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    body = tmp_path / "digits.npy"
    np.save(body, pixels)
    out = asyncio.run(service.predict_npy(body))
    assert isinstance(out, BatchPrediction)
    same = [asyncio.run(service.predict_batch(pixels.tolist())),
            asyncio.run(service.predict_npy(body.read_bytes()))]  # fmt: skip
    for other in same:
        assert [answer(p) for p in other.predictions] == [answer(p) for p in out.predictions]


@pytest.mark.parametrize(
    ("array", "status", "message"),
    [
        (np.zeros((2, 27, 28)), 400, "shape"),
        (np.full((2, 784), np.nan), 400, "NaN"),
        (np.zeros((MAX_BATCH + 1, 784), np.uint8), 413, "over the limit"),
    ],
    ids=["shape", "nan", "over-the-bound"],
)
def test_bad_npy_is_refused_with_its_status(service, array, status, message):
    buffer = io.BytesIO()
    np.save(buffer, array)
    with pytest.raises(ServiceError) as refused:
        asyncio.run(service.predict_npy(buffer.getvalue()))
    assert (refused.value.status, message in refused.value.message) == (status, True)


def test_batch_limit_is_in_the_api_schema():
    schema = MnistClassifier.apis["predict_batch"].input_spec.model_json_schema()
    assert schema["properties"]["images"]["maxItems"] == MAX_BATCH


def test_softmax_is_stable_for_huge_logits():
    probs = softmax(np.array([[1000.0, 0.0, -1000.0], [5.0, 5.0, 5.0]], dtype=np.float32))
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(probs[1], 1 / 3)


def test_missing_model_fails_loudly(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "model.onnx")


def test_model_that_does_not_match_its_metadata_fails_loudly(model_path, tmp_path):
    copy = tmp_path / "model.onnx"
    shutil.copy(model_path, copy)
    meta = read_json(model_path.with_name("model.json"))
    write_json(tmp_path / "model.json", {**meta, "sha256": "0" * 64})
    with pytest.raises(ModelLoadError, match="SHA-256"):
        load_model(copy)


def test_service_runs_without_torch(model_path):
    # A fresh interpreter where `import torch` fails: the service must still load and answer.
    code = (
        "import sys\n"
        "for name in ('torch', 'torchvision', 'pytorch_lightning', 'lightning'):\n"
        "    sys.modules[name] = None\n"
        "from serving.service import MnistClassifier\n"
        "from serving.schemas import example_pixels\n"
        "import asyncio\n"
        "print(asyncio.run(MnistClassifier().predict_array(example_pixels())).digit)\n"
    )
    env = {**os.environ, "MNIST_MODEL_PATH": str(model_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().isdigit()


def test_no_pickle_in_serving():
    # BentoML's own pickle transport is refused by RequestGuard; our code never unpickles.
    for module in (REPO / "serving").glob("*.py"):
        assert not _imports(module) & {
            "pickle",
            "cloudpickle",
            "dill",
            "joblib",
            "marshal",
            "shelve",
        }


def test_no_bentoml_private_modules_and_small_modules():
    for module in (REPO / "serving").glob("*.py"):
        assert not _imports(module) & {"_bentoml_impl", "_bentoml_sdk"}, module
        # service.py, the one class with every route and the request path's hooks, the most
        assert len(module.read_text().splitlines()) <= 230, module


def _imports(path: Path) -> set[str]:
    import ast

    source = path.read_text()
    return {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in getattr(node, "names", [])
    } | {
        node.module.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }


def _png_pixels(encoded: str) -> np.ndarray:
    assert not encoded.startswith("data:")
    img = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert (img.format, img.mode, img.size) == ("PNG", "L", (28, 28))
    return np.asarray(img)


def test_return_input_gives_exactly_the_model_input(service, digit_png, tmp_path):
    upload = tmp_path / "digit.png"
    upload.write_bytes(digit_png)
    pred = asyncio.run(service.predict(upload, return_input=True))
    expected = imaging.to_uint8(imaging.preprocess_image(digit_png))
    np.testing.assert_array_equal(_png_pixels(pred.model_input), expected)
    assert asyncio.run(service.predict(upload)).model_input is None
    batch = asyncio.run(service.predict_batch([EXAMPLE_PIXELS] * 2, return_input=True))
    for p in batch.predictions:
        np.testing.assert_array_equal(_png_pixels(p.model_input), np.asarray(EXAMPLE_PIXELS))
    single = asyncio.run(service.predict_array(EXAMPLE_PIXELS, return_input=True))
    assert single.model_input == batch.predictions[0].model_input


def _reachable(root: object, hops: int) -> list[object]:
    """The garbage-collected objects ``root`` refers to, within ``hops`` references."""
    import gc

    seen, frontier, found = {id(root)}, [root], []
    for _ in range(hops):
        frontier = [
            r
            for obj in frontier
            for r in gc.get_referents(obj)
            if gc.is_tracked(r) and id(r) not in seen and not seen.add(id(r))
        ]
        found += frontier
    return found


def test_start_up_objects_are_frozen_out_of_the_garbage_collector(model_path, monkeypatch):
    """Full collections over everything a worker holds after start-up stalled its event
    loop; the service freezes it all once the model is loaded. So what was alive before
    the service was built, and the model's session with the objects holding it, are in
    the permanent generation, out of every collection's sight."""
    import gc

    import onnxruntime

    monkeypatch.setenv("MNIST_MODEL_PATH", str(model_path))
    gc.collect()
    frozen_before, loose_before = gc.get_freeze_count(), len(gc.get_objects())
    service = MnistClassifier()
    # All that was loose (collected first, so alive) is frozen now, bar what died meanwhile.
    assert gc.get_freeze_count() - frozen_before >= 0.9 * loose_before
    near = [service, *_reachable(service, 4)]  # service > models > pair > model > session
    sessions = [i for i, obj in enumerate(near) if isinstance(obj, onnxruntime.InferenceSession)]
    assert sessions, "no ONNX Runtime session within 4 references of the service"
    holders = {
        id(o)
        for o in near[: sessions[0]]
        if any(r is near[sessions[0]] for r in gc.get_referents(o))
    }
    scanned = {id(obj) for obj in gc.get_objects()}  # generations 0-2, not the permanent one
    assert not [near[i] for i in sessions if id(near[i]) in scanned], "a session left unfrozen"
    assert holders and not holders & scanned, "what holds the session was left unfrozen"


def test_without_a_model_every_endpoint_is_refused_with_503(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_MODEL_PATH", str(tmp_path / "missing" / "model.onnx"))
    broken = MnistClassifier()
    assert not asyncio.run(broken.__is_ready__())
    with pytest.raises(ServiceError) as refused:
        asyncio.run(broken.predict_array(EXAMPLE_PIXELS))
    assert refused.value.status == 503
    assert "model not loaded" in refused.value.message


def test_importing_the_service_changes_nothing_in_uvicorn():
    # The header deadline reaches uvicorn at server start-up (serving.connections), never
    # as a side effect of an import: a test, a notebook or a tool importing the service
    # keeps stock uvicorn.
    code = (
        "import copy, uvicorn.config\n"
        "before = copy.deepcopy(uvicorn.config.HTTP_PROTOCOLS)\n"
        "import serving.service\n"
        "assert uvicorn.config.HTTP_PROTOCOLS == before, uvicorn.config.HTTP_PROTOCOLS\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_header_deadlines_give_uvicorn_the_protocol_at_start_up():
    # Against the installed uvicorn: its lifespan hands the middleware the Config whose
    # protocol class each new connection is built from.
    import uvicorn
    from uvicorn.lifespan.on import LifespanOn

    from serving.connections import HeaderDeadlineProtocol, HeaderDeadlines

    async def app(scope, receive, send):
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.complete"})

    config = uvicorn.Config(HeaderDeadlines(app, timeout_s=2.5, keepalive_s=40), lifespan="on")
    config.load()
    assert not issubclass(config.http_protocol_class, HeaderDeadlineProtocol)

    async def start_up() -> None:
        lifespan = LifespanOn(config)
        await lifespan.startup()
        assert not lifespan.startup_failed

    asyncio.run(start_up())
    assert issubclass(config.http_protocol_class, HeaderDeadlineProtocol)
    assert config.http_protocol_class.header_timeout_s == 2.5
    assert config.http_protocol_class.keepalive_s == 40 and config.timeout_keep_alive == 40


def test_every_route_logs_a_known_source():
    from mnist_mlops.monitoring.records import SOURCES
    from serving.routes import API_ROUTES, PYTHON_SOURCE, UI_SOURCE

    sources = {row.source for row in API_ROUTES if row.source is not None}
    assert sources | {UI_SOURCE, PYTHON_SOURCE} == set(SOURCES)
    # the table and BentoML's APIs name the same routes, each once, each by its method
    assert {row.method: row.path for row in API_ROUTES} == {
        name: api.route for name, api in MnistClassifier.apis.items()
    }


def test_each_api_takes_its_input_model_plus_what_the_front_adds():
    """The decorated methods are what the front calls: their parameters are the input
    model's fields (what BentoML's client sends) plus ``source`` and ``client`` (and the .npy
    answer's media type; /feedback: ``peer`` and ``forwarded_for``), which the front sets
    and BentoML's schema leaves out."""
    import inspect

    for name, api in MnistClassifier.apis.items():
        params = list(inspect.signature(api.func).parameters)[1:]
        added = {"source", "client"} | ({"answer"} if name == "predict_npy" else set())
        if name == "feedback":
            added = {"peer", "forwarded_for"}
        assert set(params) == set(api.input_spec.model_fields) | added, name
