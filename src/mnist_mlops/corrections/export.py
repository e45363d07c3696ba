"""Split users' corrections into a train part and a holdout part, by request id, and write them.

Each correction is the logged 28x28 input and the digit the user says it shows. Which
part it goes to is decided by a hash of its request id alone, so a correction never
moves between parts as more arrive, and never sits in both: the holdout measures what
training on the train part did to digits the model never trained on.

Corrections are anonymous, untrusted input. The service's store keeps one digit per
request (the last); given two different digits for one request from anywhere else, this
module drops it (nobody can say which is right). The rest go through, and the champion gate,
not this module, decides whether a model trained on them may serve.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mnist_mlops.data.corrections import PARTS, CorrectionSet, save_part


class CorrectionLike(Protocol):
    request_id: str
    digit: int
    pixels: np.ndarray  # (28, 28) uint8
    predicted: int


@dataclass
class ExportSummary:
    """What went where, for the export's one-line report and summary.json."""

    parts: dict[str, int] = field(default_factory=dict)
    per_digit: dict[str, dict[int, int]] = field(default_factory=dict)
    conflicting: int = 0  # requests corrected to different digits: dropped
    no_input: int = 0  # corrections whose logged input is gone (expired, images off)
    confirmed: int = 0  # "corrections" that agree with what the model answered

    def line(self) -> str:
        parts = ", ".join(f"{name} {n}" for name, n in self.parts.items())
        return (
            f"corrections exported: {parts}; dropped {self.conflicting} conflicting, "
            f"{self.no_input} without a logged input; {self.confirmed} agree with the model"
        )


def holdout_share(request_id: str) -> float:
    """Where the request id falls in [0, 1): the first 8 bytes of its SHA-256."""
    digest = hashlib.sha256(request_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_corrections(
    corrections: Iterable[CorrectionLike], holdout_fraction: float, no_input: int = 0
) -> tuple[dict[str, CorrectionSet], ExportSummary]:
    """Both parts, each ordered by request id (the same corrections give the same bytes)."""
    by_id: dict[str, list[CorrectionLike]] = defaultdict(list)
    for correction in corrections:
        by_id[correction.request_id].append(correction)
    summary = ExportSummary(no_input=no_input)
    chosen: dict[str, list[CorrectionLike]] = {part: [] for part in PARTS}
    for request_id in sorted(by_id):
        same = by_id[request_id]
        if len({c.digit for c in same}) > 1:
            summary.conflicting += 1
            continue
        part = "holdout" if holdout_share(request_id) < holdout_fraction else "train"
        chosen[part].append(same[0])
        summary.confirmed += int(same[0].digit == same[0].predicted)
    sets = {part: _as_set(items) for part, items in chosen.items()}
    summary.parts = {part: len(data) for part, data in sets.items()}
    summary.per_digit = {
        part: dict(sorted(Counter(int(d) for d in data.y).items())) for part, data in sets.items()
    }
    return sets, summary


def _as_set(items: list[CorrectionLike]) -> CorrectionSet:
    if not items:
        return CorrectionSet.empty()
    return CorrectionSet(
        x=np.stack([np.asarray(c.pixels, dtype=np.uint8).reshape(28, 28) for c in items]),
        y=np.array([int(c.digit) for c in items], dtype=np.int64),
        request_id=np.array([c.request_id for c in items], dtype=str),
    )


def export_corrections(
    corrections: Iterable[CorrectionLike],
    out_dir: str | os.PathLike[str],
    holdout_fraction: float,
    no_input: int = 0,
) -> ExportSummary:
    """Write both parts of the dataset (empty ones too) into ``out_dir``."""
    sets, summary = split_corrections(corrections, holdout_fraction, no_input)
    for part, data in sets.items():
        save_part(out_dir, part, data)
    return summary
