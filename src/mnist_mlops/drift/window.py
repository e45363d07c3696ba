"""A time window of the inference log as a table, with what had to be skipped counted.

The log is a folder of files written by the service (:mod:`mnist_mlops.monitoring.logfiles`)
and kept for days, so a report must cost what its window holds, not what the folder holds.
Only the files that can hold the window's records are opened
(:func:`~mnist_mlops.monitoring.log_reader.window_files`: by their names and modification
times), their record batches are streamed with only the columns needed, each batch is cut
to the window before anything is computed on it, and of its rows only a few numbers are
kept: the images are turned into features (:func:`~mnist_mlops.monitoring.records.log_features`)
one batch at a time and dropped. Memory grows with the window, never with the history or
the images.

Corrupt lines of old JSON-lines files and batches cut short are skipped and counted by the
reader; a record that reads but carries something unusable (a number that is not finite, a
digit outside 0..9, no time) is skipped and counted the same way: the report says how much
it could not read instead of failing on one bad record or guessing a value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mnist_mlops.core.errors import UserError
from mnist_mlops.monitoring.features import FEATURES
from mnist_mlops.monitoring.log_reader import ReadCounts, log_features, read_batches, window_files
from mnist_mlops.monitoring.records import ANSWER

NUMBERS = (*ANSWER, *FEATURES)
LABELS = ("model_version", "source")  # kept as categories: a few distinct values each
# What is read of each record: the time, the labels, the answer, the input (or, with
# images off, its stored features).
READ = ("time", *LABELS, *NUMBERS, "input")
_TIME = pa.timestamp("ms", tz="UTC")  # the log's clock
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class Window:
    """The records answered in [start, end), and what the reader skipped.

    ``outside`` counts only records of the files that were opened: files that cannot hold
    a record of the window are never read, so their records are not counted anywhere.
    """

    frame: pd.DataFrame  # columns: time, model_version, source (categories), and NUMBERS
    start: datetime
    end: datetime
    skipped: int  # corrupt lines or batches, plus records in the window with unusable values
    outside: int  # records of the opened files answered before or after the window

    def describe(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass
class Tally:
    """What reading a window met besides its records (shared by :func:`window_batches`'
    callers: the drift window and the champion/challenger pairs)."""

    read: ReadCounts = field(default_factory=ReadCounts)
    outside: int = 0  # records of the opened files answered outside the window
    untimed: int = 0  # records with no time


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


def log_folder(log_dir: str | Path) -> Path:
    """``log_dir`` as the inference log's folder, or one line naming the setting to fix."""
    folder = Path(log_dir)
    if not folder.is_dir():
        raise UserError(
            f"{folder}: no inference log folder; pass --log-dir (the service's "
            "MNIST_INFERENCE_LOG_DIR)"
        )
    return folder


def _bound(when: datetime) -> pa.Scalar:
    """``when`` rounded up to the log's millisecond: a logged time (whole milliseconds) is
    at or after ``when`` exactly when it is at or after this, and likewise before."""
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    micros = (when - _EPOCH) // timedelta(microseconds=1)
    return pa.scalar(-(-micros // 1000), _TIME)


def window_batches(
    folder: Path, start: datetime, end: datetime, columns: Sequence[str], tally: Tally
) -> Iterator[pa.RecordBatch]:
    """The records of ``folder`` answered in [start, end), a batch at a time, with only
    ``columns`` (``time`` among them); what was outside or had no time goes to ``tally``."""
    low, high = _bound(start), _bound(end)
    files = window_files(folder, start, end)
    for batch in read_batches(folder, tally.read, files, columns):
        time = batch.column("time")
        inside = pc.and_(pc.greater_equal(time, low), pc.less(time, high))
        kept = pc.sum(inside).as_py() or 0
        tally.untimed += time.null_count
        tally.outside += batch.num_rows - time.null_count - kept
        if kept == batch.num_rows:
            yield batch
        elif kept:
            yield batch.filter(inside)  # rows with no time (null) are dropped


def _numbers(batch: pa.RecordBatch) -> dict[str, np.ndarray]:
    """NUMBERS of every row as float64, NaN where a value is missing."""
    out = {
        name: batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        for name in ANSWER
    }
    out.update(log_features(batch))
    return out


def _frame_part(batch: pa.RecordBatch) -> tuple[pa.Table, int]:
    """The batch's usable rows as the window's small columns, and how many were not."""
    numbers = _numbers(batch)
    digit = numbers["digit"]
    usable = np.isfinite(np.column_stack(list(numbers.values()))).all(axis=1)
    usable &= (digit >= 0) & (digit <= 9)
    keep = pa.array(usable)
    columns: dict[str, pa.Array] = {
        "time": batch.column("time").filter(keep),
        **{name: pc.dictionary_encode(batch.column(name).filter(keep)) for name in LABELS},
        "digit": pa.array(digit[usable].astype(np.int64)),
        **{name: pa.array(numbers[name][usable]) for name in NUMBERS[1:]},
    }
    return pa.table(columns), int((~usable).sum())


def frame_schema() -> pa.Schema:
    """The window's table: the time, the labels as categories, the digit and the numbers."""
    labels = [pa.field(name, pa.dictionary(pa.int32(), pa.string())) for name in LABELS]
    numbers = [pa.field(name, pa.float64()) for name in NUMBERS[1:]]
    return pa.schema([pa.field("time", _TIME), *labels, pa.field("digit", pa.int64()), *numbers])


def load_window(log_dir: str | Path, start: datetime, end: datetime) -> Window:
    """Every usable record of the folder answered in [start, end)."""
    folder = log_folder(log_dir)
    tally = Tally()
    parts: list[pa.Table] = []
    unusable = 0
    for batch in window_batches(folder, start, end, READ, tally):
        part, bad = _frame_part(batch)
        parts.append(part)
        unusable += bad
    table = pa.concat_tables(parts) if parts else frame_schema().empty_table()
    frame = table.to_pandas()
    skipped = tally.read.corrupt + tally.untimed + unusable
    return Window(frame, start, end, skipped, tally.outside)
