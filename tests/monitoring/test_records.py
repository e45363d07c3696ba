"""The hand-written PNGs are real PNGs, and the record lines are real JSON."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image

from mnist_mlops.imaging import to_uint8
from mnist_mlops.monitoring.records import FIELDS, Answered, build_records, encode_pngs
from support.logkit import answers


def test_pillow_reads_the_pngs_back_exactly():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)  # noise: the worst case
    images[0] = 0
    images[1] = 255
    for text, image in zip(encode_pngs(images), images):
        with Image.open(io.BytesIO(base64.b64decode(text))) as png:
            png.verify()  # checks the chunk CRCs
        with Image.open(io.BytesIO(base64.b64decode(text))) as png:
            assert (png.format, png.mode, png.size) == ("PNG", "L", (28, 28))
            np.testing.assert_array_equal(np.asarray(png), image)


def test_a_digit_is_a_few_hundred_bytes():
    pixels, _ = answers(20)
    sizes = [len(text) for text in encode_pngs(to_uint8(pixels))]
    assert max(sizes) < 600


def test_every_line_is_json_with_every_field_in_order():
    pixels, probabilities = answers(3)
    batch = [Answered(["a" * 32, "b" * 32], 1.7e9 + 0.25, '/odd"route', "json",
                      pixels[:2], probabilities[:2]),
             Answered(["c" * 32], 1.7e9 + 59.9996, "/predict", "upload",
                      pixels[2:], probabilities[2:])]  # fmt: skip
    records = [json.loads(line) for line in build_records(batch, "v1", "f" * 64, True)]
    assert [list(r) for r in records] == [list(FIELDS)] * 3
    assert records[0]["endpoint"] == '/odd"route'  # strings are JSON-escaped
    assert [r["time"] for r in records] == ["2023-11-14T22:13:20.250+00:00"] * 2 + [
        "2023-11-14T22:14:19.999+00:00"
    ]
