"""One inference-log record per answered image: its fields, how they are made and read back.

A record is one JSON object on one line::

    {"request_id": "9f2c...", "time": "2026-01-05T10:31:07.512+00:00",
     "model_version": "3a9e1c...", "model_sha256": "3a9e1c...", "model_role": "champion",
     "registry_version": "3", "endpoint": "/predict", "source": "upload", "digit": 7,
     "confidence": 0.981, "margin": 0.969, "shadow_version": "77b0d2...",
     "shadow_role": "challenger", "shadow_digit": 7, "shadow_confidence": 0.912,
     "ink_fraction": 0.14, ..., "input_png": "iVBORw0KGgo..."}

The model fields name the model that answered (``model_role`` champion or challenger, its
``registry_version`` when it came from the registry, else null); the ``shadow_*`` fields
the second model that scored the same image without answering it (a shadowed challenger,
or in a canary the model that did not answer), all null when none did.

``input_png`` is the 28x28 uint8 input the model was given, as a base64 grayscale PNG
(null when image logging is off). The features are :data:`~.features.FEATURES`, computed
on that uint8 image, so the offline reference (which rounds the same way) compares like
with like. Records are built in batches (:func:`build_records`): the features of a few
hundred images cost about what a handful cost one at a time.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import cv2
import numpy as np

from mnist_mlops.imaging import to_uint8
from mnist_mlops.monitoring.features import FEATURES, batch_features

# The fields every record has, in order (the features sit between the shadow's and input_png).
FIELDS: tuple[str, ...] = (
    "request_id", "time", "model_version", "model_sha256", "model_role", "registry_version",
    "endpoint", "source", "digit", "confidence", "margin",
    "shadow_version", "shadow_role", "shadow_digit", "shadow_confidence", *FEATURES, "input_png",
)  # fmt: skip
# Fields that records written before they existed lack: read back with these values.
LATER_FIELDS: dict[str, object] = {
    "model_role": "champion", "registry_version": None, "shadow_version": None,
    "shadow_role": None, "shadow_digit": None, "shadow_confidence": None,
}  # fmt: skip
ROLES = ("champion", "challenger")  # what model_role and shadow_role say
SHADOW_CHUNK = 4096  # images per deferred shadow model call (bounds the writer's memory)
# Where a request came from; "python" is a call to the service class without HTTP.
SOURCES: tuple[str, ...] = ("upload", "json", "batch", "ui", "npy", "python")


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


def encode_pngs(images: np.ndarray) -> list[str]:
    """(N, 28, 28) uint8 images -> base64 (no ``data:`` prefix) of 8-bit grayscale PNGs.

    Written directly (signature, IHDR, one IDAT, IEND) rather than through OpenCV or
    Pillow: for images this small their per-call set-up is most of the cost, and every
    answered image pays it. Each row gets filter byte 0 (none); zlib's fastest level
    still makes a digit a few hundred bytes. Any PNG reader reads them (:func:`decode_png`).
    """
    rows = np.zeros((len(images), 28, 29), np.uint8)
    rows[:, :, 1:] = images
    out = []
    for raw in rows.reshape(len(images), -1):
        data = zlib.compress(raw.tobytes(), 1)
        idat = _U32.pack(len(data)) + b"IDAT" + data + _U32.pack(zlib.crc32(data, _IDAT_CRC))
        out.append(base64.b64encode(_PNG_HEAD + idat + _PNG_END).decode("ascii"))
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    return _U32.pack(len(data)) + kind + data + _U32.pack(zlib.crc32(kind + data))


_U32 = struct.Struct(">I")
_IDAT_CRC = zlib.crc32(b"IDAT")
# Signature, then IHDR: 28 x 28, bit depth 8, colour type 0 (gray), default methods.
_PNG_HEAD = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
_PNG_END = _chunk(b"IEND", b"")


def decode_png(text: str) -> np.ndarray:
    """One of :func:`encode_pngs` reversed: a (28, 28) uint8 array; ValueError if not one."""
    buffer = np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8)
    if buffer.size == 0:  # cv2.imdecode raises its own error type on an empty buffer
        raise ValueError("input_png is empty")
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None or image.shape != (28, 28) or image.dtype != np.uint8:
        raise ValueError("input_png is not a 28x28 8-bit grayscale PNG")
    return image


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


def build_records(
    batch: list[Answered], model_version: str, model_sha256: str, images: bool
) -> list[str]:
    """One JSON line (no newline) per image of every request in ``batch``, in order.

    ``model_version`` and ``model_sha256`` name the model of the requests that do not name
    their own (:attr:`Answered.model`). Lines are formatted from :data:`_LINE` rather than
    by ``json.dumps`` per record (a few times faster, and this runs for every answered
    image): the strings that vary per request are JSON-encoded once per request, the ids
    are hex, the PNG is base64, and the numbers are finite floats, whose ``repr`` is valid
    JSON.
    """
    if not batch:
        return []
    pixels = to_uint8(np.concatenate([a.pixels.reshape(-1, 28, 28) for a in batch]))
    probabilities = np.concatenate([a.probabilities.reshape(-1, 10) for a in batch])
    top2 = np.sort(probabilities, axis=1)[:, -2:]
    numbers = zip(
        probabilities.argmax(axis=1).tolist(),
        top2[:, 1].tolist(),
        (top2[:, 1] - top2[:, 0]).tolist(),
        *(values.tolist() for values in batch_features(pixels).values()),
    )
    default = ModelTag(model_version, model_sha256)
    pngs = encode_pngs(pixels) if images else []
    origins: dict[tuple[str, str], str] = {}  # (endpoint, source) -> its JSON, made once
    lines: list[str] = []
    i = 0
    for answered in batch:
        key = (answered.endpoint, answered.source)
        if key not in origins:
            origins[key] = f'"endpoint":{json.dumps(key[0])},"source":{json.dumps(key[1])}'
        model = _model_json(answered.model or default)
        head = f'"time":"{_iso_time(answered.time)}",{model},{origins[key]}'
        shadows = _shadow_json(answered)
        for request_id, values, shadow in zip(answered.request_ids, numbers, shadows):
            png = f'"{pngs[i]}"' if pngs else "null"
            digit, confidence, margin, *features = values
            lines.append(_LINE % (request_id, head, digit, confidence, margin, shadow,
                                  *features, png))  # fmt: skip
            i += 1
    return lines


@functools.lru_cache(maxsize=16)
def _model_json(tag: ModelTag) -> str:
    """The answering model's fields of a record (a few models serve: made once each)."""
    return (
        f'"model_version":{json.dumps(tag.version)},"model_sha256":{json.dumps(tag.sha256)},'
        f'"model_role":{json.dumps(tag.role)},"registry_version":{json.dumps(tag.registry_version)}'
    )


_NO_SHADOW = '"shadow_version":null,"shadow_role":null,"shadow_digit":null,"shadow_confidence":null'


def _shadow_json(answered: Answered) -> list[str]:
    """The ``shadow_*`` fields of each of the request's records."""
    n = len(answered.request_ids)
    if answered.shadow is None or answered.shadow_probabilities is None:
        return [_NO_SHADOW] * n
    tag = answered.shadow
    head = f'"shadow_version":{json.dumps(tag.version)},"shadow_role":{json.dumps(tag.role)}'
    probabilities = answered.shadow_probabilities.reshape(-1, 10)
    return [
        f'{head},"shadow_digit":{digit},"shadow_confidence":{confidence!r}'
        for digit, confidence in zip(
            probabilities.argmax(axis=1).tolist(), probabilities.max(axis=1).tolist()
        )
    ]


@functools.lru_cache(maxsize=4)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _iso_time(when: float) -> str:
    """``when`` as ISO 8601 UTC to the millisecond (the date part made once a second)."""
    second = int(when)
    return f"{_iso_second(second)}.{int((when - second) * 1000):03d}+00:00"


# One record: request_id, the per-request head, digit, confidence, margin, the shadow's
# fields, FEATURES, PNG.
_LINE = (
    '{"request_id":"%s",%s,"digit":%d,"confidence":%r,"margin":%r,%s,'
    + "".join(f'"{name}":%r,' for name in FEATURES)
    + '"input_png":%s}'
)


def parse_record(line: str) -> dict[str, object] | None:
    """A record from one line, or None if the line is not a whole, well-formed record.

    A record written before the :data:`LATER_FIELDS` existed reads back with their values
    (served by the champion, no shadow).
    """
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    for field, value in LATER_FIELDS.items():
        record.setdefault(field, value)
    if not all(field in record for field in FIELDS):
        return None
    if not isinstance(record["request_id"], str) or not isinstance(record["digit"], int):
        return None
    return record
