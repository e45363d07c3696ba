"""Scoring with ``models/served.json`` uses the artifact the gate chose, as the service
does: the int8 one here, its precision in the summary line and the MLflow run."""

from __future__ import annotations

import json
import shutil

import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest

from mnist_mlops.inference.model_card import ModelCard, card_path
from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME, inference_session, softmax
from support.gated import INT8_NAME, gated_export

PROB_COLUMNS = [f"p{d}" for d in range(10)]


@pytest.fixture(scope="module")
def served_json(score_model, tmp_path_factory):
    """The scoring test model with its card, its int8 artifact and a choice of int8."""
    folder = tmp_path_factory.mktemp("export")
    float_path = folder / "model.onnx"
    shutil.copy(score_model, float_path)
    ModelCard.for_model(float_path, mean=0.1307, std=0.3081).write_beside(float_path)
    return gated_export(float_path, folder)


def _int8_probs(served_json, pixels: np.ndarray) -> np.ndarray:
    session = inference_session(served_json.with_name(INT8_NAME))
    batch = np.ascontiguousarray(pixels, dtype=np.float32)
    return softmax(session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0])


@pytest.mark.slow
def test_served_json_scores_with_the_int8_artifact(
    tmp_path, score_cli, served_json, pixels, pixels_npy
):
    proc = score_cli(str(served_json), str(pixels_npy), "out.parquet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    card = ModelCard.read_beside(served_json.with_name(INT8_NAME))
    assert f"v{card.version} (int8)" in proc.stdout
    table = pq.read_table(tmp_path / "out.parquet")
    probs = np.stack([table.column(c).to_numpy() for c in PROB_COLUMNS], axis=1)
    np.testing.assert_allclose(probs, _int8_probs(served_json, pixels), atol=1e-6)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("mnist-scoring").experiment_id])
    params = run.data.params
    assert (params["model_precision"], params["model_sha256"]) == ("int8", card.sha256)


def test_a_choice_whose_artifact_changed_fails_in_one_line(
    tmp_path, score_cli, served_json, pixels_npy
):
    for f in served_json.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    int8_card = card_path(tmp_path / INT8_NAME)
    int8_card.write_text(json.dumps({**json.loads(int8_card.read_text()), "sha256": "0" * 64}))
    proc = score_cli(str(tmp_path / served_json.name), str(pixels_npy), "o.csv", cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "changed after the gate" in line and "Traceback" not in proc.stderr
