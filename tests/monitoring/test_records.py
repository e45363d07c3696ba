"""A record batch holds every image of every request, with the model that answered, the
shadow beside it and the input as it was given; old JSON lines read back the same way."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from mnist_mlops.imaging import to_uint8
from mnist_mlops.monitoring.legacy_log import LATER_FIELDS, parse_line
from mnist_mlops.monitoring.log_reader import as_pixels
from mnist_mlops.monitoring.logfiles import encode_batch, stream_header
from mnist_mlops.monitoring.records import (
    FIELDS,
    LOG_SCHEMA,
    Answered,
    ModelTag,
    answer_columns,
    build_batch,
    score_shadows,
)
from support.logkit import SHA256, VERSION, answers, write_legacy_log

DEFAULT = ModelTag("v1", "f" * 64)


def _rows(batch: list[Answered], images: bool = True) -> list[dict[str, object]]:
    """The batch as written and read back through a stream."""
    for compression in ("zstd", "lz4", "none"):
        data = stream_header() + encode_batch(build_batch(batch, DEFAULT, images), compression)
        (table,) = pa.ipc.open_stream(data)
        assert table.schema == LOG_SCHEMA
    return table.to_pylist()


def test_every_image_is_one_row_with_every_field_in_order():
    pixels, probabilities = answers(3)
    batch = [Answered(["a" * 32, "b" * 32], 1.7e9 + 0.25, '/odd"route', "json",
                      pixels[:2], probabilities[:2]),
             Answered(["c" * 32], 1.7e9 + 59.9996, "/predict", "upload",
                      pixels[2:], probabilities[2:])]  # fmt: skip
    records = _rows(batch)
    assert [list(r) for r in records] == [list(FIELDS)] * 3
    assert [r["request_id"] for r in records] == ["a" * 32, "b" * 32, "c" * 32]
    assert [r["endpoint"] for r in records] == ['/odd"route'] * 2 + ["/predict"]
    assert [r["time"] for r in records] == [
        datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=timezone.utc)
    ] * 2 + [datetime(2023, 11, 14, 22, 14, 19, 999000, tzinfo=timezone.utc)]
    for record, image in zip(records, to_uint8(pixels)):
        np.testing.assert_array_equal(as_pixels(record["input"]), image)
    answer = answer_columns(probabilities)
    assert [r["digit"] for r in records] == answer["digit"].tolist()
    np.testing.assert_allclose([r["margin"] for r in records], answer["margin"], rtol=1e-6)


def test_a_digit_costs_a_few_hundred_bytes_compressed():
    pixels, probabilities = answers(200)
    built = build_batch([Answered([f"{i:032x}" for i in range(200)], 1.7e9, "/p", "batch",
                                  pixels, probabilities)], DEFAULT)  # fmt: skip
    raw, packed = len(encode_batch(built, "none")), len(encode_batch(built, "zstd"))
    assert raw > 200 * 784 and packed < raw / 2


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
    records = _rows(batch, images=False)
    first, _, plain = records
    assert (first["model_version"], first["model_role"], first["registry_version"]) == (
        "d" * 12, "challenger", "4",
    )  # fmt: skip
    assert (first["shadow_version"], first["shadow_role"]) == ("c" * 12, "champion")
    assert first["shadow_digit"] == int(shadow_probabilities[0].argmax())
    assert first["shadow_confidence"] == np.float32(shadow_probabilities[0].max())
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
    records = _rows(scored)
    assert [r["shadow_digit"] for r in records[:7]] == expected.argmax(axis=1).tolist()


def test_old_lines_without_the_model_fields_read_back_as_the_champions(tmp_path):
    pixels, probabilities = answers(1)
    path = tmp_path / "inference-20260101T000000.000000Z-1.jsonl"
    write_legacy_log(path, pixels, probabilities)
    (line,) = path.read_bytes().splitlines(keepends=True)
    assert not LATER_FIELDS.keys() & json.loads(line).keys()
    record = parse_line(line)
    assert record is not None and record["model_role"] == "champion"
    assert record["shadow_digit"] is None and record["registry_version"] is None
    assert (record["model_version"], record["model_sha256"]) == (VERSION, SHA256)
    assert parse_line(line[:-1]) is None  # cut short: no newline
