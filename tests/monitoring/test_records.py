"""The hand-written PNGs are real PNGs, and the record lines are real JSON."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image

from mnist_mlops.imaging import to_uint8
from mnist_mlops.monitoring.records import (
    FIELDS,
    LATER_FIELDS,
    Answered,
    ModelTag,
    build_records,
    encode_pngs,
    parse_record,
    score_shadows,
)
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


def test_a_record_names_the_model_that_answered_and_the_shadow_beside_it():
    pixels, probabilities = answers(3)
    shadow_probabilities = probabilities[:, ::-1].copy()  # another model: other digits
    champion = ModelTag("c" * 12, "c" * 64, "champion", "3")
    challenger = ModelTag("d" * 12, "d" * 64, "challenger", "4")
    two = shadow_probabilities[:2]
    canary = Answered(["a" * 32, "b" * 32], 1.7e9, "/predict_batch", "batch", pixels[:2],
                      probabilities[:2], challenger, champion, two)  # fmt: skip
    batch = [
        canary,
        Answered(["e" * 32], 1.7e9, "/predict", "upload", pixels[2:], probabilities[2:]),
    ]
    records = [json.loads(line) for line in build_records(batch, "v1", "f" * 64, False)]
    assert [list(r) for r in records] == [list(FIELDS)] * 3
    first, _, plain = records
    assert (first["model_version"], first["model_role"], first["registry_version"]) == (
        "d" * 12, "challenger", "4",
    )  # fmt: skip
    assert (first["shadow_version"], first["shadow_role"]) == ("c" * 12, "champion")
    assert first["shadow_digit"] == int(shadow_probabilities[0].argmax())
    assert first["shadow_confidence"] == float(shadow_probabilities[0].max())
    # A request without its own model tag is the log's model, the champion, no shadow.
    assert (plain["model_version"], plain["model_role"], plain["registry_version"]) == (
        "v1", "champion", None,
    )  # fmt: skip
    assert all(plain[f] is None for f in FIELDS if f.startswith("shadow_"))


def test_deferred_shadows_are_scored_in_one_call_per_model_and_split_back():
    """The writer scores each shadow model once for the whole batch (in chunks), and each
    request gets back exactly its own images' scores, in order."""
    pixels, probabilities = answers(7)
    calls: list[int] = []

    def reversed_digits(images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        return probabilities_of(images)[:, ::-1]

    def probabilities_of(images: np.ndarray) -> np.ndarray:  # a "model": pixels -> scores
        means = images.reshape(len(images), -1).mean(axis=1)
        return np.stack([np.roll(np.eye(10)[0], int(m) % 10) for m in means])

    shadow, other = ModelTag("d" * 12, "d" * 64, "challenger"), ModelTag("e" * 12, "e" * 64)
    sizes = [(0, 3), (3, 4), (4, 7)]
    batch = [Answered([f"{i}" * 32 for i in range(a, b)], 1.7e9, "/p", "batch", pixels[a:b],
                      probabilities[a:b], None, shadow, None, reversed_digits)
             for a, b in sizes]  # fmt: skip
    given = probabilities[:1, ::-1].copy()  # already scored: left alone
    batch.append(Answered(["9" * 32], 1.7e9, "/p", "json", pixels[:1], probabilities[:1],
                          None, other, given, reversed_digits))  # fmt: skip
    scored = score_shadows(batch, chunk=4)
    assert calls == [4, 3]  # the 7 deferred images in chunks of 4: one model, one pass
    expected = probabilities_of(pixels)[:, ::-1]
    for answered, (a, b) in zip(scored, sizes):
        np.testing.assert_array_equal(answered.shadow_probabilities, expected[a:b])
        assert answered.shadow_scorer is None
    assert scored[-1] is batch[-1]
    records = [json.loads(line) for line in build_records(scored, "v1", "f" * 64, False)]
    assert [r["shadow_digit"] for r in records[:7]] == expected.argmax(axis=1).tolist()


def test_records_written_before_the_model_fields_read_back_as_the_champions():
    pixels, probabilities = answers(1)
    (line,) = build_records([Answered(["a" * 32], 1.7e9, "/p", "json", pixels, probabilities)],
                            "v1", "f" * 64, False)  # fmt: skip
    old = {k: v for k, v in json.loads(line).items() if k not in LATER_FIELDS}
    record = parse_record(json.dumps(old))
    assert record is not None and record["model_role"] == "champion"
    assert record["shadow_digit"] is None and record["registry_version"] is None
