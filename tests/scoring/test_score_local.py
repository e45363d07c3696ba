"""The scoring command on this machine: arrays, IDX, image folders, bad input, MLflow run."""

from __future__ import annotations

import csv

import mlflow
import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from mnist_mlops import imaging
from mnist_mlops.scoring.job import score
from mnist_mlops.tracking.runs import prepare_store
from support.synthetic import encode_idx

PROB_COLUMNS = [f"p{d}" for d in range(10)]


def check_predictions(table, ids: list, pixels: np.ndarray, direct_probs) -> None:
    """Rows in order, one per input, equal to ONNX Runtime called directly."""
    id_column = table.column_names[0]
    assert table.column_names == [id_column, "digit", "prob", *PROB_COLUMNS]
    assert table.column(id_column).to_pylist() == ids
    probs = np.stack([table.column(c).to_numpy() for c in PROB_COLUMNS], axis=1)
    expected = direct_probs(pixels)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert np.array_equal(table.column("digit").to_numpy(), expected.argmax(axis=1))
    assert np.allclose(table.column("prob").to_numpy(), expected.max(axis=1), atol=1e-6)


def test_an_npy_is_scored_in_parts_like_direct_onnx_runtime(
    tmp_path, score_model, pixels_npy, pixels, direct_probs
) -> None:
    out = tmp_path / "out.parquet"
    summary = score(str(score_model), pixels_npy, out, part_size=128)
    assert (summary.inputs, summary.scored, summary.failed, summary.kind) == (300, 300, 0, "npy")
    check_predictions(pq.read_table(out), list(range(300)), pixels, direct_probs)
    assert pq.ParquetFile(out).metadata.num_row_groups == 3  # one per part
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]  # parts removed


def test_an_idx_file_gives_the_same_as_the_npy(tmp_path, score_model, pixels, direct_probs):
    (tmp_path / "images-idx3-ubyte").write_bytes(encode_idx(pixels))
    summary = score(str(score_model), tmp_path / "images-idx3-ubyte", tmp_path / "out.csv")
    assert summary.kind == "idx"
    check_predictions(pcsv.read_csv(tmp_path / "out.csv"), list(range(300)), pixels, direct_probs)


def test_images_go_through_the_serving_preprocessing(
    tmp_path, score_model, digit_folder, direct_probs
) -> None:
    folder, expected = digit_folder
    summary = score(str(score_model), folder, tmp_path / "out.parquet", workers=2, part_size=10)
    ids = sorted(expected)
    assert (summary.inputs, summary.scored, summary.failed) == (len(ids), len(ids), 0)
    pixels = np.stack([expected[i] for i in ids])
    check_predictions(pq.read_table(tmp_path / "out.parquet"), ids, pixels, direct_probs)
    assert (tmp_path / "out.errors.csv").read_text() == "file,reason\n"


def test_one_process_and_a_pool_give_identical_output(tmp_path, score_model, digit_folder):
    folder, _ = digit_folder
    score(str(score_model), folder, tmp_path / "one.csv", workers=1, part_size=7)
    score(str(score_model), folder, tmp_path / "pool.csv", workers=2, part_size=7)
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "pool.csv").read_bytes()


def test_bad_files_are_skipped_listed_and_fail_the_exit_status(
    tmp_path, score_cli, score_model, bad_folder, direct_probs
) -> None:
    folder, good = bad_folder
    proc = score_cli(str(score_model), str(folder), "out.parquet", "--no-track", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "scored 12 of 16 inputs (images), 4 failed (see out.errors.csv)" in proc.stdout
    with open(tmp_path / "out.errors.csv") as handle:
        reasons = {row["file"]: row["reason"] for row in csv.DictReader(handle)}
    assert sorted(reasons) == sorted(
        ["bad/corrupt.png", "bad/empty.png", "bad/notes.txt", "bad/truncated.png"]
    )
    assert "0 bytes" in reasons["bad/empty.png"]
    assert f"not a {imaging.ACCEPTED}" in reasons["bad/notes.txt"]
    assert "could not be decoded" in reasons["bad/truncated.png"]
    assert reasons["bad/corrupt.png"]
    ids = sorted(good)
    pixels = np.stack([good[i] for i in ids])
    check_predictions(pq.read_table(tmp_path / "out.parquet"), ids, pixels, direct_probs)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.mkdir(), "the folder has no files"),
        (lambda p: None, "no such file or folder"),
        (lambda p: p.write_bytes(b"hello"), "not a folder, .npy or IDX file"),
    ],
    ids=["empty folder", "wrong path", "not an input"],
)
def test_unusable_inputs_fail_in_one_line(tmp_path, score_cli, score_model, make, words) -> None:
    make(tmp_path / "input")
    proc = score_cli(str(score_model), "input", "out.csv", "--no-track", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines


@pytest.mark.slow  # a subprocess that opens an MLflow store: seconds each
@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("models:/mnist-mlp@champion", "not found in the registry"),
        ("models:/mnist-mlp/7", "not found in the registry"),
        ("models:/no such thing", "not a model URI"),
        ("models/missing.onnx", "model file not found"),
    ],
    ids=["unregistered", "no such version", "malformed", "missing file"],
)
def test_a_model_that_does_not_resolve_fails_in_one_line(
    tmp_path, score_cli, pixels_npy, model, words
) -> None:
    prepare_store(f"sqlite:///{tmp_path}/mlflow.db", "mnist-mlp")  # a store, without that model
    proc = score_cli(model, str(pixels_npy), "out.csv", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.slow
def test_a_registry_uri_without_a_store_says_so(tmp_path, score_cli, pixels_npy) -> None:
    proc = score_cli("models:/mnist-mlp@champion", str(pixels_npy), "out.csv", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: models:/mnist-mlp@champion: no MLflow store at {tmp_path}/mlflow.db; run the "
        "pipeline (dvc repro) to register a model, or set MLFLOW_TRACKING_URI to the team's "
        "tracking server"
    ]
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_a_scoring_run_is_recorded_in_mlflow(tmp_path, score_cli, score_model, bad_folder):
    folder, _ = bad_folder
    proc = score_cli(str(score_model), str(folder), "out.parquet", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("mnist-scoring").experiment_id])
    assert run.data.metrics["score/inputs"] == 16
    assert run.data.metrics["score/scored"] == 12
    assert run.data.metrics["score/failed"] == 4
    assert run.data.metrics["score/images_per_s"] > 0
    assert run.data.params["model_version"] == run.data.params["model_sha256"][:12]
    assert len(run.data.tags["dataset_sha256"]) == 64
    (dataset,) = run.inputs.dataset_inputs
    assert run.data.tags["dataset_sha256"].startswith(dataset.dataset.digest)
