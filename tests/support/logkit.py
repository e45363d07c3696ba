"""Helpers for the monitoring tests: counters that remember, and model answers to log."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from mnist_mlops.imaging import to_uint8
from mnist_mlops.monitoring.features import image_features

VERSION, SHA256 = "ab12cd34ef56", "ab12cd34ef56" + "0" * 52


class CountingCounters:
    """A plain in-memory :class:`~mnist_mlops.monitoring.inference_log.LogCounters`."""

    def __init__(self) -> None:
        self.records = 0
        self.drops: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    def written(self, records: int) -> None:
        self.records += records

    def dropped(self, reason: str, records: int) -> None:
        self.drops[reason] += records

    def failed(self, stage: str) -> None:
        self.failures[stage] += 1


def answers(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` model inputs (float32 0..255, strokes of varied width) and softmax rows."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((n, 28, 28), np.float32)
    for i in range(n):
        width = 2 + i % 5
        col = int(rng.integers(6, 20))
        pixels[i, 4:24, col : col + width] = rng.uniform(150, 255)
    logits = rng.normal(size=(n, 10))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return pixels, probabilities


def write_legacy_log(
    path: Path, pixels: np.ndarray, probabilities: np.ndarray, extra: bytes = b""
) -> list[str]:
    """A log file as the service wrote them before the Arrow format (one JSON object per
    line, the input as a base64 PNG, no model_role or shadow fields), then ``extra``;
    returns the request ids. Every record's time is 2026-01-01T00:00:00Z."""
    ids = [f"{i:032x}" for i in range(len(pixels))]
    lines = []
    for request_id, image, row in zip(ids, to_uint8(pixels), probabilities):
        top2 = np.sort(row)[-2:]
        png = base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()
        record = {"request_id": request_id, "time": "2026-01-01T00:00:00.000+00:00",
                  "model_version": VERSION, "model_sha256": SHA256, "endpoint": "/predict",
                  "source": "upload", "digit": int(row.argmax()), "confidence": float(top2[1]),
                  "margin": float(top2[1] - top2[0]), **image_features(image),
                  "input_png": png}  # fmt: skip
        lines.append(json.dumps(record).encode() + b"\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines) + extra)
    return ids
