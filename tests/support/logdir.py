"""Inference log folders as the service leaves them over time, for the readers' tests.

A reader picks a window's files by their names (when a file was started) and modification
times (when it was last written), so a test log must have both right: a file written now
by :class:`~mnist_mlops.monitoring.logfiles.LogFile` is named after today, whatever times
its records carry. These write the files' bytes as the writer does (the stream's schema,
then one encoded record batch per write), named after their first record and last
modified at their last, unless the test says otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from mnist_mlops.monitoring.logfiles import (
    LEGACY_SUFFIX,
    STAMP,
    SUFFIX,
    encode_batch,
    stream_header,
)
from mnist_mlops.monitoring.records import Answered, ModelTag, build_batch

MODEL = ModelTag("ab12cd34ef56", "ab12cd34ef56" + "0" * 52, "champion", "3")


def log_name(started: datetime, suffix: str = SUFFIX, pid: int = 1) -> str:
    """A log file's name as the writer gives it: start time, host, pid."""
    return f"inference-{started.strftime(STAMP)}-testhost-{pid}{suffix}"


def set_mtime(path: Path, when: datetime) -> None:
    """Make ``path`` look last written at ``when``."""
    os.utime(path, (when.timestamp(), when.timestamp()))


def stroke_answers(n: int, when: datetime, seed: int = 0, source: str = "upload") -> Answered:
    """One request of ``n`` images answered at ``when``: a vertical 20x4 stroke at full ink
    (80 of 784 pixels: every feature a finite number) and random softmax rows."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((n, 28, 28), np.float32)
    pixels[:, 4:24, 12:16] = 255.0
    probabilities = rng.dirichlet(np.ones(10), n)
    ids = [f"{seed:04d}{i:028x}" for i in range(n)]
    return Answered(ids, when.timestamp(), "/predict", source, pixels, probabilities)


def batches(requests: Sequence[Answered], images: bool = True) -> list[pa.RecordBatch]:
    """Each request as the record batch the writer builds for it."""
    return [build_batch([a], MODEL, images) for a in requests]


def write_arrows(
    folder: Path,
    written: Sequence[pa.RecordBatch],
    started: datetime | None = None,
    last: datetime | None = None,
    extra: bytes = b"",
    pid: int = 1,
) -> Path:
    """A ``.arrows`` file of ``written`` then ``extra`` (e.g. a batch cut short), named by
    ``started`` (default: the first record's time) and last modified at ``last`` (default:
    the last record's time)."""
    times = [t for b in written for t in b.column("time").to_pylist()]
    started = started or min(times)
    path = folder / log_name(started, SUFFIX, pid)
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(stream_header() + b"".join(encode_batch(b) for b in written) + extra)
    set_mtime(path, last or max(times))
    return path


def legacy_path(folder: Path, started: datetime, pid: int = 1) -> Path:
    """Where a ``.jsonl`` file started at ``started`` lies (write it, then :func:`set_mtime`)."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder / log_name(started, LEGACY_SUFFIX, pid)


def cut_short(batch: pa.RecordBatch, keep: float = 0.5) -> bytes:
    """``batch``'s message with its end missing: what a crash mid-write leaves."""
    data = encode_batch(batch)
    return data[: int(len(data) * keep)]
