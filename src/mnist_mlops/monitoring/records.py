"""The inference log's records: one row per answered image, written as Arrow record batches.

What a row holds (:data:`LOG_SCHEMA`, one column each)::

    request_id  "0190f3a2c4e17d3b9f0c2a5e4f000003"   (the answer's id, 32 hex digits)
    time        2026-01-05 10:31:07.512 UTC           (when the answer was ready, ms)
    model_version, model_sha256, model_role, registry_version    (the model that answered)
    endpoint, source                                   ("/predict_npy", "npy")
    digit, confidence, margin                          (its answer: :func:`answer_columns`)
    shadow_version, shadow_role, shadow_registry_version, shadow_digit, shadow_confidence
                                                       (the other model; null if none)
    ink_fraction ... mean_intensity                    (FEATURES; null while ``input`` is kept)
    input       784 bytes: the 28x28 uint8 input the model was given (null: images off)

Why columns and not a JSON line per image (docs/monitoring.md has the profile): for a
256-image request, formatting JSON lines, PNGs and features took ~9 ms of the writer's CPU
against ~5 ms for the answer itself. A record batch takes the request's pixels as one
block, its answers as a few numpy columns, and the strings per request, not per image.
The image features are not stored while the input is: they are a pure function of it,
computed when a report reads the log (:func:`.log_reader.log_features`), so serving never pays for
them; with images off they are the only trace of the input, and the writer stores them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mnist_mlops.imaging import to_uint8
from mnist_mlops.monitoring.features import FEATURES, batch_features

ROLES = ("champion", "challenger")  # what model_role and shadow_role say
SHADOW_CHUNK = 4096  # images per deferred shadow model call (bounds the writer's memory)
# Where a request came from; "python" is a call to the service class without HTTP.
SOURCES: tuple[str, ...] = ("upload", "json", "batch", "ui", "npy", "python")
INPUT_BYTES = 28 * 28
# The answer's columns, in the log's order: what the drift reference computes the same way.
ANSWER = ("digit", "confidence", "margin")
_TEXT = pa.string()
LOG_SCHEMA = pa.schema(
    [
        pa.field("request_id", _TEXT, nullable=False),
        pa.field("time", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("model_version", _TEXT),
        pa.field("model_sha256", _TEXT),
        pa.field("model_role", _TEXT),
        pa.field("registry_version", _TEXT),
        pa.field("endpoint", _TEXT),
        pa.field("source", _TEXT),
        pa.field("digit", pa.int8(), nullable=False),
        pa.field("confidence", pa.float32()),
        pa.field("margin", pa.float32()),
        pa.field("shadow_version", _TEXT),
        pa.field("shadow_role", _TEXT),
        pa.field("shadow_registry_version", _TEXT),
        pa.field("shadow_digit", pa.int8()),
        pa.field("shadow_confidence", pa.float32()),
        *(pa.field(name, pa.float32()) for name in FEATURES),
        pa.field("input", pa.binary(INPUT_BYTES)),
    ],
    metadata={"mnist_inference_log": "1"},
)
FIELDS: tuple[str, ...] = tuple(LOG_SCHEMA.names)


@dataclass(frozen=True)
class ModelTag:
    """Which model scored a request, as its records name it."""

    version: str  # the card's version (a SHA-256 prefix)
    sha256: str
    role: str = "champion"  # one of ROLES
    registry_version: str | None = None  # the registry's version number, when it came from there


@dataclass(frozen=True)
class Answered:
    """What one request answered: kept as references, turned into records by the writer."""

    request_ids: list[str]
    time: float  # seconds since the epoch, when the answer was ready
    endpoint: str
    source: str
    pixels: np.ndarray  # (N, 28, 28) 0..255, exactly the model's input
    probabilities: np.ndarray  # (N, 10), of the model that answered
    model: ModelTag | None = None  # the model that answered; None: the log's own
    shadow: ModelTag | None = None  # a second model that scores the same images
    shadow_probabilities: np.ndarray | None = None  # (N, 10), once ``shadow`` scored them
    # ``shadow``'s model, called by the writer (score_shadows) when the probabilities are not
    # given: scoring the shadow is off the request path and batched across requests
    shadow_scorer: Callable[[np.ndarray], np.ndarray] | None = None


def answer_columns(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """The answer to each row of (N, 10) probabilities: digit, top probability, and margin
    (top minus second). The one definition: the log and the drift reference both use it,
    and the reference is only a reference while they agree."""
    probabilities = np.asarray(probabilities).reshape(-1, 10)
    top2 = np.sort(probabilities, axis=1)[:, -2:]
    return {
        "digit": probabilities.argmax(axis=1),
        "confidence": top2[:, 1],
        "margin": top2[:, 1] - top2[:, 0],
    }


def score_shadows(batch: list[Answered], chunk: int = SHADOW_CHUNK) -> list[Answered]:
    """``batch`` with every deferred shadow scored: one model call per shadow model for all
    its requests in ``batch`` (in chunks of at most ``chunk`` images).

    A shadow model scoring one image per request doubles the model's cost of a request; a
    whole writer batch in one call costs a small share of that (a batched matrix product,
    and ONNX Runtime's per-call overhead paid once). A scorer that fails raises: the caller
    (the log's writer) then writes the whole batch without shadow fields, never unwritten.
    """
    waiting: dict[ModelTag, list[int]] = {}
    for i, answered in enumerate(batch):
        deferred = answered.shadow_probabilities is None and answered.shadow_scorer is not None
        if answered.shadow is not None and deferred:
            waiting.setdefault(answered.shadow, []).append(i)
    if not waiting:
        return batch
    out = list(batch)
    for indices in waiting.values():
        scorer = batch[indices[0]].shadow_scorer
        assert scorer is not None
        pixels = np.concatenate([batch[i].pixels.reshape(-1, 28, 28) for i in indices])
        probabilities = np.concatenate(
            [scorer(pixels[start : start + chunk]) for start in range(0, len(pixels), chunk)]
        )
        start = 0
        for i in indices:
            n = len(batch[i].request_ids)
            out[i] = dataclasses.replace(
                batch[i], shadow_probabilities=probabilities[start : start + n], shadow_scorer=None
            )
            start += n
    return out


def _per_request(values: list[object], counts: list[int], kind: pa.DataType) -> pa.Array:
    """One value per request, repeated for each of its images: one array of the requests'
    values and one ``take``, no Python loop per image nor per request (an Arrow call per
    request cost 150 us on single-image traffic, a tenth of the answer's CPU)."""
    per_image = np.repeat(np.arange(len(values)), counts)
    return pa.array(values, kind).take(pa.array(per_image))


def build_batch(batch: list[Answered], default: ModelTag, images: bool = True) -> pa.RecordBatch:
    """One record batch (:data:`LOG_SCHEMA`) of every image of every request in ``batch``.

    ``default`` names the model of the requests that do not name their own. With ``images``
    the input is kept and the features left null (read: :func:`.log_reader.log_features`); without,
    the features are computed here, since nothing else will be able to.
    """
    counts = [len(a.request_ids) for a in batch]
    n = sum(counts)
    # Each request's floats to uint8 while they are in cache, then one concatenation of a
    # quarter of the bytes: 3.6x less CPU than converting the concatenated floats (15
    # requests of 256 images: 4.3 ms against 15.4 ms).
    pixels = np.concatenate([to_uint8(a.pixels.reshape(-1, 28, 28)) for a in batch])
    answer = answer_columns(np.concatenate([a.probabilities.reshape(-1, 10) for a in batch]))
    models = [a.model or default for a in batch]
    stamps = np.repeat(np.array([int(a.time * 1000) for a in batch], np.int64), counts)
    columns: dict[str, pa.Array] = {
        "request_id": pa.array([i for a in batch for i in a.request_ids], _TEXT),
        "time": pa.array(stamps, pa.timestamp("ms", tz="UTC")),
        "model_version": _per_request([m.version for m in models], counts, _TEXT),
        "model_sha256": _per_request([m.sha256 for m in models], counts, _TEXT),
        "model_role": _per_request([m.role for m in models], counts, _TEXT),
        "registry_version": _per_request([m.registry_version for m in models], counts, _TEXT),
        "endpoint": _per_request([a.endpoint for a in batch], counts, _TEXT),
        "source": _per_request([a.source for a in batch], counts, _TEXT),
        "digit": pa.array(answer["digit"].astype(np.int8)),
        "confidence": pa.array(answer["confidence"].astype(np.float32)),
        "margin": pa.array(answer["margin"].astype(np.float32)),
        **_shadow_columns(batch, counts),
    }
    if images:
        columns.update({name: pa.nulls(n, pa.float32()) for name in FEATURES})
        block = pa.py_buffer(np.ascontiguousarray(pixels))  # no copy: concatenate's output
        columns["input"] = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(INPUT_BYTES), n, [None, block]
        )
    else:
        features = batch_features(pixels)
        columns.update({name: pa.array(features[name].astype(np.float32)) for name in FEATURES})
        columns["input"] = pa.nulls(n, pa.binary(INPUT_BYTES))
    return pa.RecordBatch.from_arrays([columns[name] for name in FIELDS], schema=LOG_SCHEMA)


def _shadow_columns(batch: list[Answered], counts: list[int]) -> dict[str, pa.Array]:
    """The ``shadow_*`` columns: the other model's digit and confidence, null where none."""
    n = sum(counts)
    digit = np.zeros(n, np.int8)
    confidence = np.zeros(n, np.float32)
    scored = np.zeros(n, bool)
    tags: list[ModelTag | None] = []
    start = 0
    for answered, count in zip(batch, counts):
        has = answered.shadow is not None and answered.shadow_probabilities is not None
        tags.append(answered.shadow if has else None)
        if has:
            probabilities = np.asarray(answered.shadow_probabilities).reshape(-1, 10)
            digit[start : start + count] = probabilities.argmax(axis=1)
            confidence[start : start + count] = probabilities.max(axis=1)
            scored[start : start + count] = True
        start += count
    mask = ~scored
    return {
        "shadow_version": _per_request([t.version if t else None for t in tags], counts, _TEXT),
        "shadow_role": _per_request([t.role if t else None for t in tags], counts, _TEXT),
        "shadow_registry_version": _per_request(
            [t.registry_version if t else None for t in tags], counts, _TEXT
        ),
        "shadow_digit": pa.array(digit, mask=mask),
        "shadow_confidence": pa.array(confidence, mask=mask),
    }
