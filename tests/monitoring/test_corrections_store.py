"""The corrections store on real databases: SQLite (WAL) and the team's PostgreSQL.

PostgreSQL is the server ``make mlflow-server`` starts (the session fixture
``mlflow_server`` runs scripts/mlflow_server.sh); each test gets its own tables by
dropping ours first. ``load_corrections`` is checked end to end: a real inference log
indexed in the store, corrections added, the logged 28x28 inputs read back.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Iterator

import numpy as np
import pytest

from mnist_mlops.core.errors import UserError
from mnist_mlops.imaging import to_uint8
from mnist_mlops.monitoring.corrections_reader import load_corrections
from mnist_mlops.monitoring.corrections_store import CorrectionsStore, UnknownRequest
from mnist_mlops.monitoring.logfiles import log_files, sweep
from support.logkit import answers, write_legacy_log

TABLES = ("mnist_corrections", "mnist_logged_requests")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def store_uri(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'feedback.sqlite'}"
        return
    import psycopg

    uri = request.getfixturevalue("mlflow_server").database
    with psycopg.connect(uri, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    yield uri


def test_a_correction_needs_a_logged_request(store_uri):
    store = CorrectionsStore(store_uri)
    with pytest.raises(UnknownRequest, match="unknown or its log has expired"):
        store.add("a" * 32, 3)
    store.add_requests(["a" * 32, "b" * 32], "inference-1.jsonl", 1.0)
    assert store.add("a" * 32, 3) is True
    store.close()


def test_the_same_correction_twice_is_stored_once_and_a_new_digit_replaces_it(store_uri):
    store = CorrectionsStore(store_uri)
    store.add_requests(["a" * 32], "inference-1.jsonl", 1.0)
    assert store.add("a" * 32, 3) is True
    assert store.add("a" * 32, 3) is False
    assert [(r[0], r[1]) for r in store.corrections()] == [("a" * 32, 3)]
    assert store.add("a" * 32, 5) is True
    assert [(r[0], r[1], r[3]) for r in store.corrections()] == [("a" * 32, 5, "inference-1.jsonl")]
    store.close()


def test_forgetting_a_log_file_expires_its_requests_but_keeps_corrections(store_uri):
    store = CorrectionsStore(store_uri)
    store.add_requests(["a" * 32], "old.jsonl", 1.0)
    store.add_requests(["b" * 32], "new.jsonl", 2.0)
    store.add("a" * 32, 1)
    store.forget_log_file("old.jsonl")
    with pytest.raises(UnknownRequest):
        store.add("a" * 32, 2)
    assert store.add("b" * 32, 2) is True
    assert [(r[0], r[3]) for r in store.corrections()] == [
        ("a" * 32, None),
        ("b" * 32, "new.jsonl"),
    ]
    store.close()


def test_corrections_survive_a_restart(store_uri):
    first = CorrectionsStore(store_uri)
    first.add_requests(["c" * 32], "f.jsonl", 1.0)
    first.add("c" * 32, 8)
    first.close()
    second = CorrectionsStore(store_uri)
    assert [(r[0], r[1]) for r in second.corrections()] == [("c" * 32, 8)]
    second.close()


def _hammer(uri: str, worker: int) -> int:
    """One process: log 200 requests in batches and correct each (what a worker does)."""
    store = CorrectionsStore(uri)
    index = CorrectionsStore(uri, durable=False)
    stored = 0
    for batch in range(20):
        ids = [f"{worker:02x}{batch:02x}{i:028x}" for i in range(10)]
        index.add_requests(ids, f"w{worker}.jsonl", float(batch))
        stored += sum(store.add(request_id, (batch + i) % 10) for i, request_id in enumerate(ids))
    return stored


def test_several_processes_write_at_once_without_losing_a_row(store_uri):
    CorrectionsStore(store_uri).corrections()  # creates the tables
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        stored = pool.starmap(_hammer, [(store_uri, w) for w in range(3)])
    assert stored == [200, 200, 200]
    assert len(CorrectionsStore(store_uri).corrections()) == 600


def test_sqlite_runs_in_wal_mode(tmp_path):
    path = tmp_path / "f.sqlite"
    CorrectionsStore(f"sqlite:///{path}").corrections()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_bad_uri_says_what_to_use_and_never_echoes_a_password():
    with pytest.raises(UserError, match="use sqlite:///path/to/file.sqlite or postgresql://") as e:
        CorrectionsStore("postgresq://team:s3cret@db.internal/x")  # a typo'd scheme
    assert "s3cret" not in str(e.value) and "db.internal" not in str(e.value)


def test_an_unreadable_store_is_one_clear_error(tmp_path):
    path = tmp_path / "f.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="cannot read the SQLite corrections store"):
        load_corrections(f"sqlite:///{path}", tmp_path / "inference")


def test_load_corrections_joins_each_with_its_logged_input(store_uri, make_log, tmp_path):
    index = CorrectionsStore(store_uri, durable=False)
    log = make_log(index=index)
    pixels, probabilities = answers(6)
    ids = log.record(pixels, probabilities, "/predict_batch", "batch")
    assert log.flush()
    store = CorrectionsStore(store_uri)
    for i in (4, 1, 2):
        store.add(ids[i], (i + 3) % 10)
    store.add_requests(["f" * 32], "gone.jsonl", 0.0)  # logged, but its file is gone
    store.add("f" * 32, 0)
    skipped: list[str] = []
    corrections = load_corrections(store_uri, log.settings.log_dir, skipped)
    assert [c.request_id for c in corrections] == [ids[4], ids[1], ids[2]]
    for c, i in zip(corrections, (4, 1, 2)):
        assert c.digit == (i + 3) % 10 and c.predicted == int(probabilities[i].argmax())
        assert c.pixels.dtype == np.uint8 and c.pixels.shape == (28, 28)
        np.testing.assert_array_equal(c.pixels, to_uint8(pixels[i]))
        assert c.time.tzinfo is not None
    assert skipped == ["f" * 32]


def test_load_corrections_skips_inputs_that_were_not_logged(store_uri, make_log):
    index = CorrectionsStore(store_uri, durable=False)
    log = make_log(index=index, log_images=False)
    pixels, probabilities = answers(2)
    ids = log.record(pixels, probabilities, "/predict_batch", "batch")
    assert log.flush()
    CorrectionsStore(store_uri).add(ids[0], 7)
    skipped: list[str] = []
    assert load_corrections(store_uri, log.settings.log_dir, skipped) == []
    assert skipped == [ids[0]]


def test_a_correction_keeps_its_input_when_retention_deletes_the_log(store_uri, make_log):
    index = CorrectionsStore(store_uri, durable=False)
    log = make_log(index=index)
    pixels, probabilities = answers(4)
    ids = log.record(pixels, probabilities, "/predict_batch", "batch")
    assert log.flush()
    store = CorrectionsStore(store_uri, log_dir=log.settings.log_dir)
    assert store.add(ids[2], 5) is True  # the input is copied now, from the log file
    log.close()  # the writer lets go of its file; retention may now delete it
    folder = log.settings.log_dir
    assert len(sweep(folder, max_bytes=0, retention_s=0, forget=index.forget_log_file)) == 1
    assert log_files(folder) == []
    with pytest.raises(UnknownRequest):  # its requests cannot be corrected any more...
        store.add(ids[3], 1)
    skipped: list[str] = []
    (kept,) = load_corrections(store_uri, folder, skipped)  # ... but the correction stays whole
    assert (kept.request_id, kept.digit, kept.predicted) == (
        ids[2], 5, int(probabilities[2].argmax()),
    )  # fmt: skip
    np.testing.assert_array_equal(kept.pixels, to_uint8(pixels[2]))
    assert skipped == []


def test_a_correction_needs_an_image_the_request_had(store_uri, make_log):
    index = CorrectionsStore(store_uri, durable=False)
    log = make_log(index=index)
    pixels, probabilities = answers(2)
    ids = log.record(pixels, probabilities, "/predict_batch", "batch")
    assert log.flush()
    store = CorrectionsStore(store_uri, log_dir=log.settings.log_dir)
    beyond = ids[0][:-6] + "000009"  # the request's key, an image it never had
    with pytest.raises(UnknownRequest):
        store.add(beyond, 3)
    assert store.add(ids[1], 3) is True


def test_corrections_from_before_inputs_were_copied_read_theirs_from_the_log(tmp_path):
    """A store and a log from before: a table without the input columns, JSON-lines logs
    indexed by each image's whole id. The store gains the columns; the export still finds
    each input in its log file."""
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE mnist_corrections (request_id TEXT PRIMARY KEY, "
                "digit INTEGER NOT NULL, received_at DOUBLE PRECISION NOT NULL)")  # fmt: skip
    pixels, probabilities = answers(3)
    folder = tmp_path / "inference"
    name = "inference-20260101T000000.000000Z-7.jsonl"
    ids = write_legacy_log(folder / name, pixels, probabilities)
    old.execute("INSERT INTO mnist_corrections VALUES (?, 4, 1.0)", (ids[1],))
    old.commit()
    old.close()
    store = CorrectionsStore(f"sqlite:///{path}", log_dir=folder)
    store.add_requests(ids, name, 1.0)  # as the old writer did: one row per image
    assert store.add(ids[2], 6) is True  # the old index finds its file, the input is copied
    rows = {r.request_id: r for r in store.corrections()}
    assert rows[ids[1]].pixels is None and rows[ids[2]].pixels is not None
    corrections = load_corrections(f"sqlite:///{path}", folder)
    assert [(c.request_id, c.digit) for c in corrections] == [(ids[1], 4), (ids[2], 6)]
    for c, i in zip(corrections, (1, 2)):
        np.testing.assert_array_equal(c.pixels, to_uint8(pixels[i]))
