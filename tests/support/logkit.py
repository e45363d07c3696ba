"""Helpers for the monitoring tests: counters that remember, and model answers to log."""

from __future__ import annotations

from collections import Counter

import numpy as np

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
