"""Log files written before the log was columnar: one JSON object per line, read as batches.

Until the Arrow format (:mod:`.logfiles`), each answered image was one line::

    {"request_id": "9f2c...", "time": "2026-01-05T10:31:07.512+00:00", "model_version": ...,
     "digit": 7, "confidence": 0.981, ..., "ink_fraction": 0.14, ..., "input_png": "iVBO..."}

with ``input_png`` the 28x28 input as a base64 grayscale PNG (null with images off). Such
files stay readable for as long as retention keeps them: :func:`jsonl_batches` turns their
lines into record batches of :data:`~.records.LOG_SCHEMA`, so every reader sees one form.
Nothing writes them any more.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import BinaryIO

import cv2
import numpy as np
import pyarrow as pa

from mnist_mlops.monitoring.features import FEATURES
from mnist_mlops.monitoring.records import LOG_SCHEMA

# The fields every line had, and those lines from before they existed lack (with the values
# they are read back with: served by the champion, no shadow).
LEGACY_FIELDS: tuple[str, ...] = (
    "request_id", "time", "model_version", "model_sha256", "endpoint", "source", "digit",
    "confidence", "margin", *FEATURES, "input_png",
)  # fmt: skip
LATER_FIELDS: dict[str, object] = {
    "model_role": "champion", "registry_version": None, "shadow_version": None,
    "shadow_role": None, "shadow_registry_version": None, "shadow_digit": None,
    "shadow_confidence": None,
}  # fmt: skip
CHUNK_LINES = 4096  # lines per batch: bounds the reader's memory on a large file


def decode_png(text: str) -> np.ndarray:
    """A logged ``input_png`` as a (28, 28) uint8 array; ValueError if it is not one."""
    buffer = np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8)
    if buffer.size == 0:  # cv2.imdecode raises its own error type on an empty buffer
        raise ValueError("input_png is empty")
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None or image.shape != (28, 28) or image.dtype != np.uint8:
        raise ValueError("input_png is not a 28x28 8-bit grayscale PNG")
    return image


def parse_line(raw: bytes) -> dict[str, object] | None:
    """A row of LOG_SCHEMA's fields from one line, or None if the line is not a whole,
    well-formed record (cut short, not JSON, a field missing or of the wrong kind)."""
    if not raw.endswith(b"\n"):
        return None
    try:
        record = json.loads(raw)
        if not isinstance(record, dict):
            return None
        for field, value in LATER_FIELDS.items():
            record.setdefault(field, value)
        if not all(field in record for field in LEGACY_FIELDS):
            return None
        if not isinstance(record["request_id"], str) or not isinstance(record["digit"], int):
            return None
        when = datetime.fromisoformat(str(record.pop("time")))
        png = record.pop("input_png")
        pixels = decode_png(png).tobytes() if isinstance(png, str) else None
    except (ValueError, TypeError):
        return None
    record["time"] = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    record["input"] = pixels
    if pixels is not None:  # the columnar log keeps either the input or its features
        record.update(dict.fromkeys(FEATURES))
    return record


def jsonl_batches(handle: BinaryIO, corrupt: list[int]) -> Iterator[pa.RecordBatch]:
    """The file's whole records as batches of LOG_SCHEMA; ``corrupt[0]`` counts the lines
    skipped."""
    rows: list[dict[str, object]] = []
    for raw in handle:
        row = parse_line(raw)
        if row is None:
            corrupt[0] += 1
            continue
        rows.append(row)
        if len(rows) == CHUNK_LINES:
            yield _as_batch(rows, corrupt)
            rows = []
    if rows:
        yield _as_batch(rows, corrupt)


def _as_batch(rows: list[dict[str, object]], corrupt: list[int]) -> pa.RecordBatch:
    try:
        return pa.RecordBatch.from_pylist(rows, schema=LOG_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # a value of the wrong kind
        good = []
        for row in rows:
            try:
                pa.RecordBatch.from_pylist([row], schema=LOG_SCHEMA)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                corrupt[0] += 1
            else:
                good.append(row)
        return pa.RecordBatch.from_pylist(good, schema=LOG_SCHEMA)
