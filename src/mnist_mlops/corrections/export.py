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

from mnist_mlops.corrections.dataset import PARTS, CorrectionSet, save_part


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
    conflicting: int = 0  # requests (or one image's requests) corrected to different digits
    repeated: int = 0  # the same image corrected again under another request id: kept once
    no_input: int = 0  # corrections whose logged input is gone (expired, images off)
    confirmed: int = 0  # "corrections" that agree with what the model answered

    def line(self) -> str:
        parts = ", ".join(f"{name} {n}" for name, n in self.parts.items())
        return (
            f"corrections exported: {parts}; dropped {self.conflicting} conflicting, "
            f"{self.repeated} repeated images, {self.no_input} without a logged input; "
            f"{self.confirmed} agree with the model"
        )


def holdout_share(request_id: str) -> float:
    """Where the request id falls in [0, 1): the first 8 bytes of its SHA-256."""
    digest = hashlib.sha256(request_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_corrections(
    corrections: Iterable[CorrectionLike], holdout_fraction: float, no_input: int = 0
) -> tuple[dict[str, CorrectionSet], ExportSummary]:
    """Both parts, each ordered by request id (the same corrections give the same bytes).

    One image sent again (a client's retry, a poisoner's loop) gets a new request id each
    time; it is kept once, in the holdout when any of its requests fall there (the holdout
    must hold only images training never saw), and dropped as conflicting when its
    requests were corrected to different digits.
    """
    by_id: dict[str, list[CorrectionLike]] = defaultdict(list)
    for correction in corrections:
        by_id[correction.request_id].append(correction)
    summary = ExportSummary(no_input=no_input)
    by_image: dict[bytes, list[tuple[str, CorrectionLike]]] = defaultdict(list)
    for request_id in sorted(by_id):
        same = by_id[request_id]
        if len({c.digit for c in same}) > 1:
            summary.conflicting += 1
            continue
        part = "holdout" if holdout_share(request_id) < holdout_fraction else "train"
        by_image[_image_key(same[0])].append((part, same[0]))
    chosen: dict[str, list[CorrectionLike]] = {part: [] for part in PARTS}
    for group in by_image.values():
        if len({c.digit for _, c in group}) > 1:
            summary.conflicting += len(group)
            continue
        part, kept = min(group, key=lambda pc: (pc[0] != "holdout", pc[1].request_id))
        chosen[part].append(kept)
        summary.repeated += len(group) - 1
        summary.confirmed += int(kept.digit == kept.predicted)
    sets = {part: _as_set(sorted(items, key=lambda c: c.request_id))
            for part, items in chosen.items()}  # fmt: skip
    summary.parts = {part: len(data) for part, data in sets.items()}
    summary.per_digit = {
        part: dict(sorted(Counter(int(d) for d in data.y).items())) for part, data in sets.items()
    }
    return sets, summary


def _image_key(correction: CorrectionLike) -> bytes:
    """The image's identity: its exact 28x28 pixels."""
    pixels = np.ascontiguousarray(correction.pixels, dtype=np.uint8)
    return hashlib.sha256(pixels.tobytes()).digest()


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
