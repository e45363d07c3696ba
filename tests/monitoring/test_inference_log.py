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
from mnist_mlops.monitoring.features import batch_features
from mnist_mlops.monitoring.inference_log import InferenceLog, request_key
from mnist_mlops.monitoring.log_reader import (
    ReadCounts,
    as_pixels,
    log_features,
    read_batches,
    read_log,
)
from mnist_mlops.monitoring.records import FIELDS
from mnist_mlops.monitoring.settings import MonitoringSettings
from support.logkit import SHA256, VERSION, CountingCounters, answers, write_legacy_log


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
    assert len({request_key(i) for i in ids}) == 3  # one key per request, not per image
    for record, image, row in zip(records, pixels, probabilities):
        assert list(record) == list(FIELDS)
        assert (record["model_version"], record["model_sha256"]) == (VERSION, SHA256)
        assert record["time"].utcoffset() == timezone.utc.utcoffset(None)
        assert abs(record["time"] - datetime.now(timezone.utc)).total_seconds() < 600
        assert record["digit"] == int(row.argmax())
        top2 = np.sort(row)[-2:]
        assert record["confidence"] == pytest.approx(top2[1], rel=1e-6)
        assert record["margin"] == pytest.approx(top2[1] - top2[0], rel=1e-5, abs=1e-7)
        np.testing.assert_array_equal(as_pixels(record["input"]), to_uint8(image))
    # The features are the input's, computed when read (the same function as the reference).
    (batch,) = read_batches(log.settings.log_dir)
    expected = batch_features(to_uint8(pixels))
    for name, values in log_features(batch).items():
        np.testing.assert_allclose(values, expected[name], rtol=1e-12)


def test_image_logging_off_keeps_the_numbers_only(make_log):
    log = make_log(log_images=False)
    pixels, probabilities = answers(3)
    log.record(pixels, probabilities, "/predict_batch", "batch")
    assert log.flush()
    records = list(read_log(log.settings.log_dir))
    assert len(records) == 3
    assert all(r["input"] is None and r["ink_fraction"] > 0 for r in records)
    (batch,) = read_batches(log.settings.log_dir)  # the stored features, as computed
    expected = batch_features(to_uint8(pixels))
    for name, values in log_features(batch).items():
        np.testing.assert_allclose(values, expected[name], rtol=1e-6)


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


def test_a_full_disk_drops_counts_and_keeps_whole_batches(make_log, counters, tiny_tmpfs):
    log = make_log(log_dir=tiny_tmpfs, log_compression="none")
    pixels, probabilities = answers(40)
    for _ in range(20):  # ~860 bytes a record: the disk is full within a few of these
        log.record(pixels, probabilities, "/predict_batch", "batch")
        assert log.flush()
    assert counters.drops["write_failed"] > 0 and counters.failures["write"] > 0
    assert counters.records + counters.drops["write_failed"] == 20 * 40
    counts = ReadCounts()  # exactly the records counted as written, no batch cut short
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
    assert len(list(folder.glob("*.arrows"))) == 2  # one file per writer


def test_records_queued_at_close_are_written(make_log):
    log = make_log()
    pixels, probabilities = answers(30)
    ids = log.record(pixels, probabilities, "/predict_batch", "batch")
    log.close()
    assert [r["request_id"] for r in read_log(log.settings.log_dir)] == ids


def test_a_batch_cut_short_is_skipped_and_counted(make_log):
    log = make_log()
    pixels, probabilities = answers(5)
    first = log.record(pixels[:2], probabilities[:2], "/p", "batch")
    assert log.flush()
    log.record(pixels[2:], probabilities[2:], "/p", "batch")
    log.close()
    (path,) = log.settings.log_dir.glob("*.arrows")
    path.write_bytes(path.read_bytes()[:-40])  # a crash in the middle of the second write
    counts = ReadCounts()
    assert [r["request_id"] for r in read_log(log.settings.log_dir, counts)] == first
    assert (counts.records, counts.corrupt) == (2, 1)


def test_old_json_lines_files_still_read(make_log, tmp_path):
    pixels, probabilities = answers(3)
    folder = tmp_path / "inference"
    junk = b"not json at all\n" + b'{"request_id": 1}\n'
    path = folder / "inference-20260101T000000.000000Z-7.jsonl"
    ids = write_legacy_log(path, pixels, probabilities, extra=junk)
    counts = ReadCounts()
    records = list(read_log(folder, counts))
    assert [r["request_id"] for r in records] == ids and (counts.records, counts.corrupt) == (3, 2)
    assert all(r["model_role"] == "champion" and r["shadow_digit"] is None for r in records)
    np.testing.assert_array_equal(as_pixels(records[1]["input"]), to_uint8(pixels[1]))
    assert records[0]["time"] == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_missing_folder_reads_as_empty(tmp_path):
    counts = ReadCounts()
    assert list(read_log(tmp_path / "nothing", counts)) == [] and counts.records == 0
