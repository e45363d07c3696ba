"""A time window of the inference log as a table, with what had to be skipped counted.

The log is written by the service (:mod:`mnist_mlops.monitoring.logfiles`), read here with
its own reader, which skips corrupt and half-written lines and counts them. A record that
parses but carries something unusable (a time that is not ISO 8601, a feature that is not a
finite number) is skipped and counted the same way: the report says how much it could not
read instead of failing on one bad line or guessing a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from mnist_mlops.core.errors import UserError
from mnist_mlops.drift.reference import ANSWER
from mnist_mlops.monitoring.features import FEATURES
from mnist_mlops.monitoring.logfiles import ReadCounts, read_log

NUMBERS = (*ANSWER, *FEATURES)


@dataclass
class Window:
    """The records answered in [start, end), and what the reader skipped."""

    frame: pd.DataFrame  # columns: time, model_version, source, and NUMBERS
    start: datetime
    end: datetime
    skipped: int  # corrupt lines plus records with unusable values
    outside: int  # whole records answered before or after the window

    def describe(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def parse_time(text: str, what: str) -> datetime:
    """An ISO 8601 time (UTC when it names no zone), or a UserError naming ``what``."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"{what}: {text!r} is not an ISO 8601 time, e.g. 2026-01-05T10:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def window_bounds(
    hours: float, since: str | None = None, until: str | None = None
) -> tuple[datetime, datetime]:
    """[start, end): ``until`` (default now) and ``since`` (default ``hours`` before it)."""
    end = parse_time(until, "--until") if until else datetime.now(timezone.utc)
    start = parse_time(since, "--since") if since else end - timedelta(hours=hours)
    if start >= end:
        raise UserError(f"the window is empty: --since {start} is not before --until {end}")
    return start, end


def _usable(record: dict[str, object]) -> tuple[datetime, list[float]] | None:
    try:
        when = datetime.fromisoformat(str(record["time"]))
        numbers = [float(record[name]) for name in NUMBERS]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in numbers) or not 0 <= numbers[0] <= 9:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)), numbers


def log_folder(log_dir: str | Path) -> Path:
    """``log_dir`` as the inference log's folder, or one line naming the setting to fix."""
    folder = Path(log_dir)
    if not folder.is_dir():
        raise UserError(
            f"{folder}: no inference log folder; pass --log-dir (the service's "
            "MNIST_INFERENCE_LOG_DIR)"
        )
    return folder


def load_window(log_dir: str | Path, start: datetime, end: datetime) -> Window:
    """Every usable record of the folder answered in [start, end)."""
    folder = log_folder(log_dir)
    counts = ReadCounts()
    rows: list[dict[str, object]] = []
    bad = outside = 0
    for record in read_log(folder, counts):
        usable = _usable(record)
        if usable is None:
            bad += 1
            continue
        when, numbers = usable
        if not start <= when < end:
            outside += 1
            continue
        row: dict[str, object] = dict(zip(NUMBERS, numbers))
        row.update(time=when, model_version=record["model_version"], source=record["source"])
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["time", "model_version", "source", *NUMBERS])
    frame["digit"] = frame["digit"].astype(int)
    return Window(frame, start, end, counts.corrupt + bad, outside)
