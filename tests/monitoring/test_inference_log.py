"""The inference log writes one whole record per answered image, and never fails a caller.

Real files in a temporary folder, the real writer thread; ``flush()`` waits for the
writer (no sleeps). Faults are injected at a moment the test controls: a folder path
that runs through a regular file, a tmpfs that fills up.
"""

from __future__ import annotations

import logging
import multiprocessing
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from mnist_mlops.imaging import to_uint8
from mnist_mlops.monitoring.features import image_features
from mnist_mlops.monitoring.inference_log import InferenceLog
from mnist_mlops.monitoring.logfiles import ReadCounts, read_log
from mnist_mlops.monitoring.records import FIELDS, decode_png
from mnist_mlops.monitoring.settings import MonitoringSettings
from support.logkit import SHA256, VERSION, CountingCounters, answers


def test_every_answered_image_is_one_whole_record(make_log, counters):
    log = make_log()
    pixels, probabilities = answers(7)
    ids = [
        *log.record(pixels[:1], probabilities[:1], "/predict", "upload"),
        *log.record(pixels[1:2], probabilities[1:2], "/predict_array", "json"),
        *log.record(pixels[2:], probabilities[2:], "/predict_batch", "batch"),
    ]
    assert log.flush()
    records = list(read_log(log.settings.log_dir))
    assert [r["request_id"] for r in records] == ids and len(set(ids)) == 7
    assert [r["source"] for r in records] == ["upload", "json"] + ["batch"] * 5
    assert counters.records == 7 and not counters.drops and not counters.failures
    for record, image, row in zip(records, pixels, probabilities):
        assert list(record) == list(FIELDS)
        assert (record["model_version"], record["model_sha256"]) == (VERSION, SHA256)
        assert datetime.fromisoformat(record["time"]).utcoffset() == timezone.utc.utcoffset(None)
        assert record["digit"] == int(row.argmax())
        top2 = np.sort(row)[-2:]
        assert record["confidence"] == pytest.approx(top2[1])
        assert record["margin"] == pytest.approx(top2[1] - top2[0])
        logged = decode_png(record["input_png"])
        np.testing.assert_array_equal(logged, to_uint8(image))
        for name, value in image_features(logged).items():
            assert record[name] == pytest.approx(value)


def test_image_logging_off_keeps_the_numbers_only(make_log):
    log = make_log(log_images=False)
    pixels, probabilities = answers(3)
    log.record(pixels, probabilities, "/predict_batch", "batch")
    assert log.flush()
    records = list(read_log(log.settings.log_dir))
    assert len(records) == 3
    assert all(r["input_png"] is None and r["ink_fraction"] > 0 for r in records)


def test_log_off_writes_nothing_and_still_answers_ids(make_log):
    log = make_log(log_enabled=False)
    pixels, probabilities = answers(4)
    ids = log.record(pixels, probabilities, "/predict_batch", "batch")
    assert log.flush()
    assert len(set(ids)) == 4 and all(len(i) == 32 for i in ids)
    assert not log.settings.log_dir.exists()


def test_a_full_queue_drops_and_counts_without_blocking(make_log, counters):
    log = make_log(queue_records=5)
    pixels, probabilities = answers(8)
    ids = log.record(pixels, probabilities, "/predict_batch", "batch")  # 8 > 5: dropped
    log.record(pixels[:2], probabilities[:2], "/predict_batch", "batch")  # fits
    assert log.flush()
    assert len(ids) == 8 and counters.drops == {"queue_full": 8}
    assert len(list(read_log(log.settings.log_dir))) == 2


def test_a_folder_that_cannot_exist_is_counted_and_logged_once(
    make_log, counters, tmp_path, caplog
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file where the log folder should be")
    log = make_log(log_dir=blocker / "inference")
    pixels, probabilities = answers(3)
    with caplog.at_level(logging.WARNING, logger="mnist_mlops.monitoring.inference_log"):
        for i in range(3):  # three write attempts, each failing
            assert len(log.record(pixels[i : i + 1], probabilities[i : i + 1], "/p", "json")) == 1
            assert log.flush()
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert counters.drops == {"write_failed": 3} and counters.failures["write"] == 3
        assert len(errors) == 1 and "Not a directory" in errors[0].getMessage()

        blocker.unlink()  # the operator fixes it: the next write works, and says so
        log.record(pixels, probabilities, "/p", "json")
        assert log.flush()
    assert len(list(read_log(blocker / "inference"))) == 3
    assert any("works again" in r.getMessage() for r in caplog.records)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A 64 KiB tmpfs: a disk that fills up after a few dozen records (needs root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_drops_counts_and_keeps_whole_lines(make_log, counters, tiny_tmpfs):
    log = make_log(log_dir=tiny_tmpfs)
    pixels, probabilities = answers(40)
    for _ in range(20):  # ~700 bytes a record: the disk is full within a few of these
        log.record(pixels, probabilities, "/predict_batch", "batch")
        assert log.flush()
    assert counters.drops["write_failed"] > 0 and counters.failures["write"] > 0
    assert counters.records + counters.drops["write_failed"] == 20 * 40
    counts = ReadCounts()  # exactly the records counted as written, no line cut short
    assert sum(1 for _ in read_log(tiny_tmpfs, counts)) == counters.records > 0
    assert counts.corrupt == 0


def _write_from_process(folder: str, start: int) -> list[str]:
    settings = MonitoringSettings(log_dir=Path(folder))
    log = InferenceLog(settings, VERSION, SHA256, CountingCounters())
    pixels, probabilities = answers(10, seed=start)
    ids = [i for _ in range(50) for i in log.record(pixels, probabilities, "/p", "batch")]
    log.close()
    return ids


def test_two_processes_writing_at_once_lose_and_mix_nothing(tmp_path):
    folder = tmp_path / "inference"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        batches = pool.starmap(_write_from_process, [(str(folder), 0), (str(folder), 1)])
    counts = ReadCounts()
    logged = [r["request_id"] for r in read_log(folder, counts)]
    assert counts.corrupt == 0 and len(batches[0]) == len(batches[1]) == 500
    assert sorted(logged) == sorted(batches[0] + batches[1])  # each exactly once
    assert len(list(folder.glob("*.jsonl"))) == 2  # one file per writer


def test_records_queued_at_close_are_written(make_log):
    log = make_log()
    pixels, probabilities = answers(30)
    ids = log.record(pixels, probabilities, "/predict_batch", "batch")
    log.close()
    assert [r["request_id"] for r in read_log(log.settings.log_dir)] == ids


def test_corrupt_and_half_written_lines_are_skipped_and_counted(make_log):
    log = make_log()
    pixels, probabilities = answers(2)
    ids = log.record(pixels, probabilities, "/p", "batch")
    log.close()
    (path,) = log.settings.log_dir.glob("*.jsonl")
    good = path.read_bytes()
    path.write_bytes(good + b"not json at all\n" + b'{"request_id": "x"}\n' + good[:100])
    counts = ReadCounts()
    assert [r["request_id"] for r in read_log(log.settings.log_dir, counts)] == ids
    assert (counts.records, counts.corrupt) == (2, 3)


def test_missing_folder_reads_as_empty(tmp_path):
    counts = ReadCounts()
    assert list(read_log(tmp_path / "nothing", counts)) == [] and counts.records == 0
