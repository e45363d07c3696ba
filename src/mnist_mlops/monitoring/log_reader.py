"""Reading the inference log: record batches, a window's files, one request's input.

Every reader goes through :func:`read_batches`, which streams one record batch at a time
(a report's memory grows with the batch and what it keeps, never with the folder), reads
only the columns asked for, and takes both file formats (:mod:`.logfiles`,
:mod:`.legacy_log`). A batch cut short at a file's end (a crash, or a write in flight in a
live file) and corrupt legacy lines are skipped and counted, never guessed at.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from mnist_mlops.monitoring.legacy_log import jsonl_batches
from mnist_mlops.monitoring.logfiles import LEGACY_SUFFIX, log_files, started_at
from mnist_mlops.monitoring.records import FIELDS, LOG_SCHEMA


@dataclass
class ReadCounts:
    """What a reader met: whole records, and what it skipped as corrupt."""

    records: int = 0
    corrupt: int = 0  # legacy lines not whole records, or batches cut short at a file's end


def read_batches(
    folder: Path,
    counts: ReadCounts | None = None,
    files: Sequence[Path] | None = None,
    columns: Sequence[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Every record batch of the folder's files (or of ``files``), oldest file first, with
    only ``columns`` (default: all). Files deleted by retention meanwhile are skipped."""
    counts = counts if counts is not None else ReadCounts()
    wanted = list(columns) if columns is not None else list(FIELDS)
    for path in log_files(folder) if files is None else files:
        for batch in _file_batches(path, wanted, counts):
            counts.records += batch.num_rows
            yield batch


def _file_batches(path: Path, columns: list[str], counts: ReadCounts) -> Iterator[pa.RecordBatch]:
    if path.suffix == LEGACY_SUFFIX:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return
        with handle:
            corrupt = [0]
            for batch in jsonl_batches(handle, corrupt):
                yield batch.select(columns)
            counts.corrupt += corrupt[0]
        return
    try:
        if path.stat().st_size == 0:  # just opened by its writer: nothing in it yet
            return
        source = pa.memory_map(str(path), "r")  # reads only the columns' buffers asked for
    except FileNotFoundError:
        return
    # Not closed here: uncompressed batches point into the map, which lives as long as they do.
    indices = [LOG_SCHEMA.get_field_index(name) for name in columns]
    try:
        options = ipc.IpcReadOptions(included_fields=indices)
        for batch in ipc.open_stream(source, options=options):
            yield batch.select(columns)  # in the order asked for
    except (OSError, pa.ArrowInvalid):  # cut short, or not a stream at all
        counts.corrupt += 1


def read_log(
    folder: Path, counts: ReadCounts | None = None, files: Sequence[Path] | None = None
) -> Iterator[dict[str, object]]:
    """Every record as a dict of LOG_SCHEMA's fields (``time`` a UTC datetime, ``input``
    784 bytes or None): for tests and small tools, not for reports over many records."""
    for batch in read_batches(folder, counts, files):
        yield from batch.to_pylist()


def window_files(folder: Path, start: datetime, end: datetime) -> list[Path]:
    """The files that can hold records answered in [start, end): started before ``end``
    (their name says when) and last written at or after ``start``. A file's records lie
    between the two, so the others are never opened."""
    out = []
    for path in log_files(folder):
        began = started_at(path)
        with contextlib.suppress(FileNotFoundError):
            last = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
            if (began is None or began < end) and last >= start:
                out.append(path)
    return out


def find_inputs(path: Path, request_ids: Sequence[str]) -> dict[str, tuple[bytes | None, int]]:
    """The logged input (784 bytes, or None with images off) and answered digit of each of
    ``request_ids`` found in the log file ``path`` (FileNotFoundError if it is gone)."""
    wanted = pa.array(list(request_ids), pa.string())
    found: dict[str, tuple[bytes | None, int]] = {}
    counts = ReadCounts()
    path.stat()  # FileNotFoundError now rather than an empty answer
    for batch in _file_batches(path, ["request_id", "digit", "input"], counts):
        hits = pc.is_in(batch.column(0), value_set=wanted)
        if not pc.any(hits).as_py():
            continue
        for row in batch.filter(hits).to_pylist():
            found[row["request_id"]] = (row["input"], int(row["digit"]))
    return found


def as_pixels(data: bytes) -> np.ndarray:
    """A logged input's 784 bytes as the (28, 28) uint8 image."""
    return np.frombuffer(data, np.uint8).reshape(28, 28).copy()
