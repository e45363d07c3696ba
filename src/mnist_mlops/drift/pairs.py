"""Pairs of answers in a window of the inference log: one image, both models' digits.

In shadow mode the champion answers and the challenger scores the same request; in canary
mode a share is answered by the challenger with the champion scoring it. Either way the
log record says who answered (``model_role``) and what the other model said (``shadow_*``),
so each such record is one pair of answers to one image. Records that are not pairs are
counted, never guessed at: requests only one model scored (``single``) and records
written before the log named the models (``old``: no ``model_role``; a reader that gives
such records a default role makes them ``single``). :mod:`.challenger` compares the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mnist_mlops.drift.window import log_folder
from mnist_mlops.monitoring.logfiles import ReadCounts, read_log

CHAMPION, CHALLENGER = "champion", "challenger"
ROLES = (CHAMPION, CHALLENGER)


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
    old: int = 0  # written before the log named the model that answered
    single: int = 0  # only one model scored the request (no shadow, no canary)
    skipped: int = 0  # corrupt lines, unusable times or roles
    outside: int = 0  # records answered before or after the window

    def describe(self) -> str:
        """What the window held, in one line: pairs and what was not one."""
        old = f", {self.old} logged before records named the model" if self.old else ""
        skipped = f"; {self.skipped} corrupt or unusable log lines skipped" if self.skipped else ""
        return (
            f"{self.records} records from {self.start.isoformat()} to {self.end.isoformat()}: "
            f"{len(self.pairs)} scored by both models; {self.single + self.old} not "
            f"comparisons ({self.single} scored by one model only{old}){skipped}"
        )


def _when(text: object) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _pair(record: dict[str, object]) -> Pair | str:
    """The record as a Pair, or why it is not one: "old", "single" or "skipped".

    Fields are read with ``get``: a record from before the model fields may lack them.
    """
    role, other = record.get("model_role"), record.get("shadow_role")
    digit, shadow = record.get("digit"), record.get("shadow_digit")
    if role is None:
        return "old"
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
    versions = {role: record.get("registry_version"), other: record.get("shadow_version")}
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
    counts = ReadCounts()
    out = Pairs([], start, end)
    for record in read_log(folder, counts):
        when = _when(record["time"])
        if when is None:
            out.skipped += 1
            continue
        if not start <= when < end:
            out.outside += 1
            continue
        out.records += 1
        pair = _pair(record)
        if isinstance(pair, Pair):
            out.pairs.append(pair)
        else:
            setattr(out, pair, getattr(out, pair) + 1)
    out.skipped += counts.corrupt
    return out
