"""The corrections as the offline side reads them: each with the 28x28 input it was given.

The export (``python -m pipeline.corrections``) and ``pipeline.compare`` read the store
through here. A correction carries the input the store copied when it was accepted; one
stored before inputs were copied takes it from its log file, while retention keeps it.

    load_corrections("sqlite:///monitoring/feedback.sqlite", Path("monitoring/inference"))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mnist_mlops.core.errors import UserError
from mnist_mlops.monitoring.corrections_store import CorrectionsStore, StoredCorrection
from mnist_mlops.monitoring.log_reader import as_pixels, find_inputs


@dataclass(frozen=True)
class Correction:
    """A user's correction with the 28x28 input the model was given for it."""

    request_id: str
    digit: int  # what the user says the image shows
    pixels: np.ndarray  # (28, 28) uint8, white ink on black, as logged
    time: datetime  # when the correction arrived (UTC)
    predicted: int  # what the model answered


def read_corrections(store_uri: str) -> list[StoredCorrection]:
    """Every row of :meth:`CorrectionsStore.corrections`, or a UserError naming the fix."""
    store = CorrectionsStore(store_uri)
    try:
        return store.corrections()
    except Exception as exc:  # sqlite3 or psycopg: unreachable, corrupt, read-only, ...
        kind = "PostgreSQL" if store.is_postgres else "SQLite"
        raise UserError(
            f"cannot read the {kind} corrections store: {type(exc).__name__}: {exc}; "
            "check MNIST_FEEDBACK_DB or --store"
        ) from None
    finally:
        store.close()


def load_corrections(
    store_uri: str, log_dir: Path, skipped: list[str] | None = None
) -> list[Correction]:
    """Every correction with its input, oldest first.

    The input is the one copied into the store when the correction was accepted; a
    correction stored before inputs were copied takes it from its log file while that is
    kept. Request ids whose input cannot be had (log expired, image logging off) are
    appended to ``skipped``.
    """
    rows = read_corrections(store_uri)
    by_file: dict[str, list[str]] = {}
    for row in rows:
        if row.pixels is None and row.log_file is not None:
            by_file.setdefault(row.log_file, []).append(row.request_id)
    from_log: dict[str, tuple[bytes | None, int]] = {}
    for name, ids in by_file.items():
        try:
            from_log.update(find_inputs(Path(log_dir) / name, ids))
        except FileNotFoundError:
            continue
    out: list[Correction] = []
    for row in rows:
        pixels, predicted = row.pixels, row.predicted
        if pixels is None:
            pixels, predicted = from_log.get(row.request_id, (None, None))
        if pixels is None or len(pixels) != 784 or predicted is None:
            if skipped is not None:
                skipped.append(row.request_id)
            continue
        when = datetime.fromtimestamp(row.received_at, timezone.utc)
        out.append(Correction(row.request_id, row.digit, as_pixels(pixels), when, int(predicted)))
    return out
