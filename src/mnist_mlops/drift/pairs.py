"""Pairs of answers in a window of the inference log: one image, both models' digits.

In shadow mode the champion answers and the challenger scores the same request; in canary
mode a share is answered by the challenger with the champion scoring it. Either way the
log record says who answered (``model_role``) and what the other model said (``shadow_*``),
so each such record is one pair of answers to one image. Records that are not pairs are
counted, never guessed at: requests only one model scored (``single``). Records written
before the log named its models (old JSON-lines files) are read with the role they had,
the champion's, and no shadow (:mod:`mnist_mlops.monitoring.legacy_log`): one model
scored them, so they count as ``single`` too. :mod:`.challenger` compares the pairs.

Only the window's files are opened, and of their records only the model columns are read
(never the images): the reader costs what the window holds (:mod:`.window`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mnist_mlops.drift.window import Tally, log_folder, window_batches

CHAMPION, CHALLENGER = "champion", "challenger"
ROLES = (CHAMPION, CHALLENGER)
# What a pair is read from: who answered and what, and what the other model said.
READ = ("request_id", "time", "model_role", "registry_version", "digit", "confidence",
        "shadow_registry_version", "shadow_role", "shadow_digit", "shadow_confidence")  # fmt: skip


@dataclass(frozen=True)
class Pair:
    """One request both models scored: each one's digit and confidence, who answered."""

    request_id: str
    answered_by: str  # CHAMPION or CHALLENGER
    digits: dict[str, int]  # by role
    confidences: dict[str, float]
    versions: dict[str, str | None]  # registry versions by role (None: served from a file)


@dataclass
class Pairs:
    """The pairs answered in [start, end), and what the window held besides them."""

    pairs: list[Pair]
    start: datetime
    end: datetime
    records: int = 0  # records answered in the window, pairs or not
    single: int = 0  # only one model scored the request (no shadow, no canary)
    skipped: int = 0  # corrupt lines or batches, records with no time or unusable fields
    outside: int = 0  # records of the opened files answered before or after the window

    def describe(self) -> str:
        """What the window held, in one line: pairs and what was not one."""
        skipped = (
            f"; {self.skipped} corrupt or unusable log records skipped" if self.skipped else ""
        )
        return (
            f"{self.records} records from {self.start.isoformat()} to {self.end.isoformat()}: "
            f"{len(self.pairs)} scored by both models; {self.single} not comparisons "
            f"(scored by one model only){skipped}"
        )


def _pair(record: dict[str, object]) -> Pair | str:
    """The record as a Pair, or why it is not one: "single" or "skipped"."""
    role, other = record.get("model_role"), record.get("shadow_role")
    digit, shadow = record.get("digit"), record.get("shadow_digit")
    if role not in ROLES:
        return "skipped"
    if shadow is None:
        return "single"
    if other not in ROLES or other == role:
        return "skipped"
    if not all(type(d) is int and 0 <= d <= 9 for d in (digit, shadow)):
        return "skipped"
    try:
        confidences = {
            str(role): float(record["confidence"]),  # type: ignore[arg-type]
            str(other): float(record.get("shadow_confidence")),  # type: ignore[arg-type]
        }
    except (TypeError, ValueError):
        return "skipped"
    if not all(0.0 <= c <= 1.0 for c in confidences.values()):
        return "skipped"
    versions = {role: record.get("registry_version"), other: record.get("shadow_registry_version")}
    return Pair(
        str(record["request_id"]),
        str(role),
        {str(role): digit, str(other): shadow},  # type: ignore[dict-item]
        confidences,
        {str(r): None if v is None else str(v) for r, v in versions.items()},
    )


def load_pairs(log_dir: str | Path, start: datetime, end: datetime) -> Pairs:
    """Every pair of answers in the folder's records answered in [start, end)."""
    folder = log_folder(log_dir)
    tally = Tally()
    out = Pairs([], start, end)
    for batch in window_batches(folder, start, end, READ, tally):
        out.records += batch.num_rows
        for record in batch.to_pylist():  # the window's rows only, without their images
            pair = _pair(record)
            if isinstance(pair, Pair):
                out.pairs.append(pair)
            else:
                setattr(out, pair, getattr(out, pair) + 1)
    out.skipped += tally.read.corrupt + tally.untimed
    out.outside = tally.outside
    return out
