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

from mnist_mlops.monitoring.features import FEATURES, batch_features
from mnist_mlops.monitoring.legacy_log import jsonl_batches
from mnist_mlops.monitoring.logfiles import LEGACY_SUFFIX, log_files, started_at
from mnist_mlops.monitoring.records import FIELDS, INPUT_BYTES, LOG_SCHEMA


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
    784 bytes or None): for tests and small tools, not for reports over many records.

    ``time`` is read as naive and given ``timezone.utc`` here: Arrow's own conversion of a
    "UTC" column asks the system's tz database, which slim images (ours) do not carry."""
    naive = pa.timestamp("ms")
    for batch in read_batches(folder, counts, files):
        at = batch.schema.get_field_index("time")  # always there: every field is read
        columns = [c.cast(naive) if i == at else c for i, c in enumerate(batch.columns)]
        for row in pa.RecordBatch.from_arrays(columns, names=batch.schema.names).to_pylist():
            row["time"] = row["time"].replace(tzinfo=timezone.utc)
            yield row


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


def log_features(batch: pa.RecordBatch | pa.Table) -> dict[str, np.ndarray]:
    """The FEATURES of every row as float64: computed from ``input`` where it was kept,
    else the stored columns; NaN where neither is there (a reader skips those rows)."""
    n = batch.num_rows
    out = {name: np.full(n, np.nan) for name in FEATURES}
    if "input" in batch.schema.names:
        kept = batch.column("input").is_valid().to_numpy(zero_copy_only=False)
        if kept.any():
            computed = batch_features(input_pixels(batch.filter(pa.array(kept))))
            for name in FEATURES:
                out[name][kept] = computed[name]
    else:
        kept = np.zeros(n, bool)
    for name in FEATURES:
        if name in batch.schema.names and (~kept).any():
            stored = batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            out[name][~kept] = stored[~kept]
    return out


def input_pixels(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """The ``input`` column of rows that all kept it, as (N, 28, 28) uint8 (no copy for one
    batch; ValueError if a row has none)."""
    column = batch.column("input")
    if column.null_count:
        raise ValueError("some rows have no logged input")
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    blocks = [
        np.frombuffer(c.buffers()[1], np.uint8)[c.offset * INPUT_BYTES :][: len(c) * INPUT_BYTES]
        for c in chunks
    ]
    flat = blocks[0] if len(blocks) == 1 else np.concatenate(blocks or [np.zeros(0, np.uint8)])
    return flat.reshape(-1, 28, 28)
