"""A time window of the real inference log: records inside it are read, those outside are
not, only the files that can hold the window are opened, and batches cut short, corrupt
lines and unusable records are skipped and counted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from mnist_mlops.core.errors import UserError
from mnist_mlops.drift.pairs import load_pairs
from mnist_mlops.drift.window import NUMBERS, load_window, window_bounds
from mnist_mlops.imaging import to_uint8
from mnist_mlops.monitoring.features import FEATURES, batch_features
from mnist_mlops.monitoring.log_reader import ReadCounts, read_batches
from mnist_mlops.monitoring.records import build_batch
from support.logdir import (
    MODEL,
    batches,
    cut_short,
    legacy_path,
    log_name,
    set_mtime,
    stroke_answers,
    write_arrows,
)
from support.logkit import answers, write_legacy_log

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def test_only_the_window_is_read_and_bad_records_are_counted(tmp_path) -> None:
    start = T0 - 24 * HOUR
    unusable = stroke_answers(2, T0 - HOUR, seed=9)
    unusable.probabilities[:] = np.nan  # no confidence, no margin
    write_arrows(tmp_path, batches([stroke_answers(5, T0 - 30 * HOUR)]))  # all before
    write_arrows(tmp_path, batches([
        stroke_answers(4, T0 - 25 * HOUR, 1),  # before the window, in a file it opens
        stroke_answers(1, start, 2),  # at the start: inside
        stroke_answers(7, T0 - 2 * HOUR, 3),
        unusable,
    ]), pid=2)  # fmt: skip
    write_arrows(tmp_path, batches([stroke_answers(6, T0 - 3 * HOUR, 4)], images=False), pid=3)
    late = stroke_answers(3, T0 - 1.5 * HOUR, 5)
    write_arrows(tmp_path, batches([late]), extra=cut_short(build_batch([late], MODEL)), pid=4)
    write_arrows(tmp_path, batches([stroke_answers(2, T0 - 0.1 * HOUR, 6),
                                    stroke_answers(1, T0, 7)]), pid=5)  # fmt: skip
    write_arrows(tmp_path, batches([stroke_answers(3, T0 + 0.1 * HOUR, 8)]), pid=6)  # all after

    window = load_window(tmp_path, start, T0)
    assert len(window.frame) == 1 + 7 + 6 + 3 + 2
    assert window.outside == 4 + 1  # of the files opened; the first and last are not
    assert window.skipped == 2 + 1  # the unusable records, the batch cut short
    assert list(window.frame.columns) == ["time", "model_version", "source", *NUMBERS]
    assert window.frame["digit"].dtype == np.int64
    assert set(window.frame["model_version"]) == {MODEL.version}
    assert window.frame["time"].min() == start and window.frame["time"].max() < T0
    # From the logged input (images on) and from the stored features (off) alike.
    assert window.frame["ink_fraction"].tolist() == pytest.approx([80 / 784] * 19)
    assert window.frame["stroke_width"].tolist() == pytest.approx([2 * 80 / 48] * 19)


def test_a_window_opens_only_the_files_that_can_hold_it(tmp_path) -> None:
    """Files whose last write was before the window, or that started after it, are never
    opened: not valid logs at all, they are not counted as corrupt. An old JSON-lines file
    inside the window is read, its images turned into features."""
    end = datetime(2026, 1, 1, 6, 0, tzinfo=timezone.utc)  # write_legacy_log's records: 00:00
    start = end - 24 * HOUR
    for pid, (began, last, suffix) in enumerate([
        (start - 72 * HOUR, start - 48 * HOUR, ".arrows"),
        (start - 72 * HOUR, start - timedelta(milliseconds=1), ".jsonl"),
        (end, end + HOUR, ".arrows"),
    ]):  # fmt: skip
        path = tmp_path / log_name(began, suffix, pid)
        path.write_bytes(b"{not a log at all\n")
        set_mtime(path, last)
    pixels, probabilities = answers(5)
    legacy = legacy_path(tmp_path, datetime(2025, 12, 31, 23, 59, tzinfo=timezone.utc), 9)
    write_legacy_log(legacy, pixels, probabilities, extra=b"half a li")
    set_mtime(legacy, datetime(2026, 1, 1, 0, 0, 1, tzinfo=timezone.utc))

    everything = ReadCounts()
    assert sum(b.num_rows for b in read_batches(tmp_path, everything)) == 5
    assert everything.corrupt == 3 + 1  # what reading every file would have counted

    window = load_window(tmp_path, start, end)
    assert (len(window.frame), window.skipped, window.outside) == (5, 1, 0)
    expected = batch_features(to_uint8(pixels))
    for name in FEATURES:
        assert window.frame[name].tolist() == pytest.approx(expected[name].tolist())
    assert window.frame["digit"].tolist() == probabilities.argmax(axis=1).tolist()
    pairs = load_pairs(tmp_path, start, end)  # the champion's records, from before shadows
    assert (pairs.records, pairs.single, pairs.skipped, len(pairs.pairs)) == (5, 5, 1, 0)


def test_an_empty_window_is_an_empty_table_with_the_columns(tmp_path) -> None:
    write_arrows(tmp_path, batches([stroke_answers(3, T0 - 0.5 * HOUR)]))
    window = load_window(tmp_path, T0 - 3 * HOUR, T0 - 2 * HOUR)
    assert len(window.frame) == 0 and window.skipped == window.outside == 0
    assert list(window.frame.columns) == ["time", "model_version", "source", *NUMBERS]


def test_the_window_defaults_to_the_last_hours_and_checks_its_bounds() -> None:
    start, end = window_bounds(24)
    assert end - start == timedelta(hours=24)
    assert abs((datetime.now(timezone.utc) - end).total_seconds()) < 3600
    start, end = window_bounds(24, since="2026-01-05T00:00", until="2026-01-06T00:00+01:00")
    assert start == datetime(2026, 1, 5, tzinfo=timezone.utc) and end.utcoffset()
    with pytest.raises(UserError, match="not an ISO 8601 time"):
        window_bounds(24, since="last tuesday")
    with pytest.raises(UserError, match="window is empty"):
        window_bounds(24, since="2026-01-06", until="2026-01-05")


def test_a_missing_log_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(UserError, match="MNIST_INFERENCE_LOG_DIR"):
        load_window(tmp_path / "nowhere", T0 - timedelta(hours=1), T0)
