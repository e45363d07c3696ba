"""The reference rows are what the service would log: the same preprocessing, the same
rounding before the features, the model's answer; refused images are left out."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mnist_mlops.drift.reference import COLUMNS, TEST_SET, build_reference, served_inputs
from mnist_mlops.evaluation.field_inputs import build_field_inputs
from mnist_mlops.export.to_onnx import export_onnx
from mnist_mlops.imaging import preprocess_image, to_uint8
from mnist_mlops.inference.session import INPUT_NAME, inference_session, softmax
from mnist_mlops.monitoring.features import FEATURES, image_features
from mnist_mlops.train.network import MLP


@pytest.fixture(scope="module")
def onnx(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "m.onnx"
    export_onnx(MLP(hidden=(16,)), path)
    return str(path)


def digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        images[i, 4 + i % 3 : 24, 10 + i % 5 : 14 + i % 7] = 255
    return images, np.arange(n) % 10


def test_rows_are_what_the_service_would_log(onnx) -> None:
    images, labels = digits(12)
    sets = build_field_inputs(["canvas"], images, labels, 5, 0, workers=1)
    table = build_reference(onnx, images[:4], labels[:4], sets)
    assert list(table.columns) == list(COLUMNS)
    assert table["set"].tolist() == [TEST_SET] * 4 + ["canvas"] * 5
    blob = io.BytesIO()
    Image.fromarray(images[0], "L").save(blob, format="PNG")
    seen = preprocess_image(blob.getvalue())
    expected = image_features(to_uint8(seen))  # the log rounds the input, so does this
    for name in FEATURES:
        assert table.loc[0, name] == pytest.approx(expected[name])
    probabilities = softmax(inference_session(onnx).run(None, {INPUT_NAME: seen[None]})[0])[0]
    assert table.loc[0, "digit"] == probabilities.argmax()
    assert table.loc[0, "confidence"] == pytest.approx(probabilities.max())
    assert ((table["margin"] >= 0) & (table["margin"] <= table["confidence"])).all()
    assert table["digit"].dtype == np.int64


def test_images_the_service_refuses_are_not_in_the_reference() -> None:
    blank = io.BytesIO()
    Image.new("L", (40, 40), 255).save(blank, format="PNG")
    ok = io.BytesIO()
    Image.fromarray(digits(1)[0][0], "L").save(ok, format="PNG")
    inputs, labels = served_inputs([blank.getvalue(), ok.getvalue()], np.array([3, 7]))
    assert inputs.shape == (1, 28, 28) and labels.tolist() == [7]
    empty, none = served_inputs([blank.getvalue()], np.array([3]))
    assert empty.shape == (0, 28, 28) and len(none) == 0
