"""Every route from BentoML's own client (``bentoml.SyncHTTPClient``) against a real server.

A BentoML user reaches for this client first; it reads ``/schema.json`` and sends each
API's input as BentoML's own dispatch would take it (JSON, or a form for file inputs).
The front answers those bodies (the .npy route takes the client's form as well as a raw
``application/x-npy`` body), and the answers equal the plain-HTTP ones.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import bentoml
import httpx
import numpy as np
import pytest
from PIL import Image

from mnist_mlops import imaging
from serving.schemas import example_pixels
from support.bento_process import Served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(served_model: Served) -> Iterator[bentoml.SyncHTTPClient]:
    with bentoml.SyncHTTPClient(served_model.url, timeout=30) as bento_client:
        yield bento_client


def expected_digit(offline_logits, pixels: np.ndarray) -> int:
    return int(offline_logits(pixels[None])[0].argmax())


def test_predict_takes_a_path_or_an_image(client, digit_png, tmp_path, offline_logits):
    path = tmp_path / "digit.png"
    path.write_bytes(digit_png)
    digit = expected_digit(offline_logits, imaging.preprocess_image(digit_png))
    by_path = client.predict(image=path)
    with Image.open(path) as image:
        by_image = client.predict(image, return_input=True)
    assert by_path["digit"] == by_image["digit"] == digit
    assert "model_input" in by_image and "model_input" not in by_path


def test_predict_array_and_batch(client, stroke_pixels, offline_logits):
    one = client.predict_array(pixels=example_pixels())
    batch = client.predict_batch(images=[example_pixels(), example_pixels()])
    digit = expected_digit(offline_logits, stroke_pixels)
    assert one["digit"] == digit
    assert [p["digit"] for p in batch["predictions"]] == [digit, digit]


def test_predict_npy_takes_a_file_by_keyword_or_position(
    client, served_model, tmp_path, offline_logits
):
    pixels = np.random.default_rng(3).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path = tmp_path / "digits.npy"
    np.save(path, pixels)
    expected = offline_logits(pixels.astype(np.float32)).argmax(axis=1).tolist()
    for answer in (client.predict_npy(array=path), client.predict_npy(path)):
        assert [p["digit"] for p in answer["predictions"]] == expected
    raw = httpx.post(  # curl's way, unchanged: the file itself as the body
        f"{served_model.url}/predict_npy",
        content=path.read_bytes(),
        headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
    )
    raw.raise_for_status()
    rows = np.load(io.BytesIO(raw.content), allow_pickle=False)
    assert rows["digit"].tolist() == expected


def test_feedback_corrects_an_answer_given_to_the_client(client):
    answer = client.predict_array(pixels=example_pixels())
    receipt = client.feedback(request_id=answer["request_id"], digit=1)
    assert receipt == {"request_id": answer["request_id"], "digit": 1, "duplicate": False}


def test_a_refusal_reaches_the_client_as_its_status(client, tmp_path: Path):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros((2, 27, 28)))
    with pytest.raises(bentoml.exceptions.BentoMLException) as refused:
        client.predict_npy(array=path)
    assert refused.value.error_code == 400
    assert "shape" in str(refused.value)
