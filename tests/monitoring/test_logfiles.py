"""Bounded disk: files rotate at a size, and the sweep deletes by age and by total size,
never a file a live writer holds, and tells the corrections store before each deletion;
the service's log keeps its bounds even when that store fails."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from mnist_mlops.monitoring.corrections_store import CorrectionsStore
from mnist_mlops.monitoring.log_reader import read_log
from mnist_mlops.monitoring.logfiles import LogFile, log_files, sweep
from support.logkit import answers

LINE = b'{"x": "' + b"y" * 90 + b'"}\n'  # 100 bytes


def test_a_file_rotates_once_it_would_pass_the_size(tmp_path):
    log = LogFile(tmp_path, rotate_bytes=250)
    paths = [log.append(LINE) for _ in range(7)]  # two lines a file, the third rotates
    log.close()
    assert len(set(paths)) == 4 and paths[0] == paths[1] != paths[2]
    assert [p.stat().st_size for p in log_files(tmp_path)] == [200, 200, 200, 100]


def test_two_writers_with_one_start_time_host_and_pid_never_share_a_file(tmp_path, monkeypatch):
    """Two replicas on one volume (same host name on host networking, same pid, same
    microsecond): the second writer's first name is taken, so it makes a new one."""
    from datetime import datetime, timezone

    import mnist_mlops.monitoring.logfiles as logfiles

    moment = datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=timezone.utc)
    monkeypatch.setattr(logfiles, "datetime", type("Frozen", (), {"now": lambda tz: moment}))
    tokens = iter(["00c0ffee", "00c0ffee", "0badcafe"])
    monkeypatch.setattr(logfiles.secrets, "token_hex", lambda n: next(tokens))
    first, second = LogFile(tmp_path, 10_000), LogFile(tmp_path, 10_000)
    paths = [first.append(b"first\n"), second.append(b"second\n")]
    first.close(), second.close()
    assert paths[0] != paths[1] and [p.name.split("-")[-1] for p in paths] == [
        "00c0ffee.arrows",
        "0badcafe.arrows",
    ]
    assert [p.read_bytes() for p in paths] == [b"first\n", b"second\n"]


def test_the_sweep_keeps_the_folder_under_its_size_oldest_first(tmp_path):
    log = LogFile(tmp_path, rotate_bytes=250)
    for _ in range(9):
        log.append(LINE)  # 5 files: 4 full (200 bytes), the current one holds 100
    forgotten: list[str] = []
    names = [p.name for p in log_files(tmp_path)]
    deleted = sweep(tmp_path, max_bytes=450, retention_s=3600, forget=forgotten.append)
    assert deleted == forgotten == names[:3]  # 900 -> 300 bytes
    assert [p.name for p in log_files(tmp_path)] == names[3:]
    log.close()


def test_the_sweep_deletes_expired_files_but_never_one_being_written(tmp_path):
    old = LogFile(tmp_path, rotate_bytes=10_000)
    old_path = old.append(LINE)
    old.close()
    live = LogFile(tmp_path, rotate_bytes=10_000)
    live_path = live.append(LINE)
    week_ago = time.time() - 7 * 86400
    for path in (old_path, live_path):
        os.utime(path, (week_ago, week_ago))
    deleted = sweep(tmp_path, max_bytes=10**9, retention_s=86400, forget=lambda name: None)
    assert deleted == [old_path.name]
    assert live_path.exists()  # held by a live writer: its turn comes after rotation
    live.close()
    assert sweep(tmp_path, max_bytes=10**9, retention_s=86400, forget=lambda n: None) == [
        live_path.name
    ]


def test_the_sweep_itself_stops_when_forget_raises(tmp_path):
    log = LogFile(tmp_path, rotate_bytes=100)
    first = log.append(LINE)
    log.append(LINE)

    def refuse(name: str) -> None:
        raise ConnectionError("database down")

    with pytest.raises(ConnectionError):
        sweep(tmp_path, max_bytes=0, retention_s=3600, forget=refuse)
    assert first.exists()  # the sweep deletes nothing it could not announce ...
    log.close()


class FailingIndex(CorrectionsStore):
    """A real SQLite store whose deletions fail, as when its disk or server is gone."""

    def forget_log_file(self, log_file: str) -> None:
        raise sqlite3.OperationalError("disk I/O error")


def test_a_failing_store_never_stops_the_size_bound(make_log, counters, tmp_path):
    # ... so the service's log announces what it can and deletes regardless: a store that
    # is down must not fill the disk (its corrections for those files export as skipped).
    index = FailingIndex(f"sqlite:///{tmp_path / 'f.sqlite'}", durable=False)
    log = make_log(index=index, rotate_mb=0.002, max_total_mb=0.005, log_compression="none")
    pixels, probabilities = answers(3)
    for _ in range(12):
        log.record(pixels, probabilities, "/predict_batch", "batch")
        assert log.flush()
    total = sum(p.stat().st_size for p in log_files(log.settings.log_dir))
    assert total <= 0.005 * 1024 * 1024 + 0.002 * 1024 * 1024
    assert counters.failures["index"] > 0 and counters.failures["retention"] == 0
    index.close()


def test_the_log_writer_applies_the_bounds(make_log, counters, tmp_path):
    # ~10 kB files, ~25 kB in all (uncompressed, three images are ~2.6 kB a write)
    rotate_mb, max_mb = 0.01, 0.025
    log = make_log(rotate_mb=rotate_mb, max_total_mb=max_mb, log_compression="none")
    pixels, probabilities = answers(3)
    for _ in range(24):
        log.record(pixels, probabilities, "/predict_batch", "batch")
        assert log.flush()
    files = log_files(log.settings.log_dir)
    total = sum(p.stat().st_size for p in files)
    assert len(files) >= 2 and total <= (max_mb + rotate_mb) * 1024 * 1024
    kept = sum(1 for _ in read_log(log.settings.log_dir))
    assert 0 < kept < counters.records == 72  # the oldest records went, by the size bound


def test_missing_folder_has_no_files(tmp_path: Path):
    assert log_files(tmp_path / "none") == []
    assert sweep(tmp_path / "none", 0, 0, forget=lambda n: None) == []
