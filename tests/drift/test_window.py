"""A time window of the real inference log format: records inside it are read, those
outside are not, and corrupt, half-written or unusable lines are skipped and counted."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from mnist_mlops.core.errors import UserError
from mnist_mlops.drift.window import NUMBERS, load_window, window_bounds
from mnist_mlops.monitoring.logfiles import LogFile
from mnist_mlops.monitoring.records import Answered, build_records

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def answered(n: int, when: datetime, seed: int = 0) -> Answered:
    rng = np.random.default_rng(seed)
    pixels = np.zeros((n, 28, 28), np.float32)
    pixels[:, 4:24, 12:16] = 255.0
    probabilities = rng.dirichlet(np.ones(10), n)
    ids = [f"{seed:04d}{i:028x}" for i in range(n)]
    return Answered(ids, when.timestamp(), "/predict", "upload", pixels, probabilities)


def write_log(folder, batches: list[Answered], extra_lines: list[bytes] = ()) -> None:
    log = LogFile(folder, rotate_bytes=10**9)
    lines = build_records(batches, "v1", "0" * 64, images=False)
    log.append("".join(line + "\n" for line in lines).encode())
    for raw in extra_lines:
        log.append(raw)
    log.close()


def test_only_the_window_is_read_and_bad_lines_are_counted(tmp_path) -> None:
    good = json.loads(build_records([answered(1, T0)], "v1", "0" * 64, images=False)[0])
    unusable = json.dumps({**good, "confidence": "high"}).encode() + b"\n"
    bad_time = json.dumps({**good, "time": "yesterday"}).encode() + b"\n"
    write_log(
        tmp_path,
        [answered(5, T0 - timedelta(hours=30)), answered(7, T0 - timedelta(hours=2), 1),
         answered(3, T0 + timedelta(minutes=1), 2)],
        [b"not json at all\n", unusable, bad_time, b'{"request_id": "cut sh'],
    )  # fmt: skip
    window = load_window(tmp_path, T0 - timedelta(hours=24), T0)
    assert len(window.frame) == 7 and window.outside == 3 + 5
    assert window.skipped == 4  # the corrupt, the half-written, the two unusable
    assert list(window.frame.columns[3:]) == list(NUMBERS)
    assert window.frame["digit"].dtype.kind == "i"
    assert window.frame["ink_fraction"].tolist() == pytest.approx([80 / 784] * 7)


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
