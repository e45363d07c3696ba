"""One inference-log record per answered image: its fields, how they are made and read back.

A record is one JSON object on one line::

    {"request_id": "9f2c...", "time": "2026-01-05T10:31:07.512+00:00",
     "model_version": "3a9e1c...", "model_sha256": "3a9e1c...", "endpoint": "/predict",
     "source": "upload", "digit": 7, "confidence": 0.981, "margin": 0.969,
     "ink_fraction": 0.14, ..., "input_png": "iVBORw0KGgo..."}

``input_png`` is the 28x28 uint8 input the model was given, as a base64 grayscale PNG
(null when image logging is off). The features are :data:`~.features.FEATURES`, computed
on that uint8 image, so the offline reference (which rounds the same way) compares like
with like. Records are built in batches (:func:`build_records`): the features of a few
hundred images cost about what a handful cost one at a time.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timezone

import cv2
import numpy as np

from mnist_mlops.imaging import to_uint8
from mnist_mlops.monitoring.features import FEATURES, batch_features

# The fields every record has, in order (the features sit between margin and input_png).
FIELDS: tuple[str, ...] = (
    "request_id", "time", "model_version", "model_sha256", "endpoint", "source",
    "digit", "confidence", "margin", *FEATURES, "input_png",
)  # fmt: skip
# Where a request came from; "python" is a call to the service class without HTTP.
SOURCES: tuple[str, ...] = ("upload", "json", "batch", "ui", "npy", "python")


@dataclass(frozen=True)
class Answered:
    """What one request answered: kept as references, turned into records by the writer."""

    request_ids: list[str]
    time: float  # seconds since the epoch, when the answer was ready
    endpoint: str
    source: str
    pixels: np.ndarray  # (N, 28, 28) 0..255, exactly the model's input
    probabilities: np.ndarray  # (N, 10)


def encode_png(image: np.ndarray) -> str:
    """A (28, 28) uint8 image as base64 of an 8-bit grayscale PNG (OpenCV: the fastest here)."""
    ok, buffer = cv2.imencode(".png", image)
    if not ok:  # OpenCV returns False rather than raising; a 28x28 uint8 array never fails
        raise ValueError("PNG encoding failed")
    return base64.b64encode(buffer.tobytes()).decode("ascii")


def decode_png(text: str) -> np.ndarray:
    """:func:`encode_png` reversed: a (28, 28) uint8 array; ValueError if it is not one."""
    buffer = np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None or image.shape != (28, 28) or image.dtype != np.uint8:
        raise ValueError("input_png is not a 28x28 8-bit grayscale PNG")
    return image


def build_records(
    batch: list[Answered], model_version: str, model_sha256: str, images: bool
) -> list[str]:
    """One JSON line (no newline) per image of every request in ``batch``, in order."""
    if not batch:
        return []
    pixels = to_uint8(np.concatenate([a.pixels.reshape(-1, 28, 28) for a in batch]))
    probabilities = np.concatenate([a.probabilities.reshape(-1, 10) for a in batch])
    top2 = np.sort(probabilities, axis=1)[:, -2:]
    digits = probabilities.argmax(axis=1).tolist()
    confidence = top2[:, 1].tolist()
    margin = (top2[:, 1] - top2[:, 0]).tolist()
    features = {name: values.tolist() for name, values in batch_features(pixels).items()}
    lines: list[str] = []
    i = 0
    for answered in batch:
        when = datetime.fromtimestamp(answered.time, timezone.utc).isoformat(
            timespec="milliseconds"
        )
        for request_id in answered.request_ids:
            record = {
                "request_id": request_id,
                "time": when,
                "model_version": model_version,
                "model_sha256": model_sha256,
                "endpoint": answered.endpoint,
                "source": answered.source,
                "digit": digits[i],
                "confidence": confidence[i],
                "margin": margin[i],
                **{name: features[name][i] for name in FEATURES},
                "input_png": encode_png(pixels[i]) if images else None,
            }
            lines.append(json.dumps(record, separators=(",", ":")))
            i += 1
    return lines


def parse_record(line: str) -> dict[str, object] | None:
    """A record from one line, or None if the line is not a whole, well-formed record."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not all(field in record for field in FIELDS):
        return None
    if not isinstance(record["request_id"], str) or not isinstance(record["digit"], int):
        return None
    return record
