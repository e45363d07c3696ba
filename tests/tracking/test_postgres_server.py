"""The pipeline's train, evaluate and export stages log to a real MLflow server on PostgreSQL.

Real processes throughout: PostgreSQL and ``mlflow server`` from scripts/mlflow_server.sh
(the ``mlflow_server`` fixture), and ``python -m pipeline.<stage>`` with only
``MLFLOW_TRACKING_URI`` pointing at the server (params.yaml still names sqlite: the
environment must win). Checked through the MLflow client: params, per-epoch metric
histories, dataset inputs, system metrics, artifacts (uploaded through the server),
the registered ONNX model with signature and input example, and its ``champion`` alias.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_mlops.tracking import client

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 3


def _stage(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stderr[-4000:]}"


@pytest.mark.timeout(600)
def test_stages_log_to_the_postgres_backed_server(
    mlflow_server, processed_dir, tmp_path, complete_run_check
):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(
        hidden=[32], max_epochs=EPOCHS, batch_size=32, accelerator="cpu", devices="1"
    )
    params["mlflow"].update(experiment="pg-e2e", registered_model="mnist-pg")
    assert params["mlflow"]["tracking_uri"].startswith("sqlite:")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "MLFLOW_TRACKING_URI": mlflow_server.uri,
        "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.5",
    }
    ckpt, data = "models/model.ckpt", str(processed_dir)
    _stage(["pipeline.train", data, ckpt, "--metrics", "m/train.json", "--curve", "p/c.csv"],
           tmp_path, env)  # fmt: skip
    _stage(["pipeline.evaluate", ckpt, data, "--metrics-dir", "m", "--plots-dir", "p"],
           tmp_path, env)  # fmt: skip
    _stage(["pipeline.export", ckpt, data, "models/model.onnx", "--metrics", "m/export.json",
            "--eval-metrics", "m/evaluate.json"], tmp_path, env)  # fmt: skip

    ref = json.loads((tmp_path / "models/run.json").read_text())
    assert ref["tracking_uri"] == mlflow_server.uri
    assert not (tmp_path / "mlflow.db").exists(), "params' sqlite store was used"
    c = client(mlflow_server.uri)
    with open(tmp_path / "p/c.csv") as handle:
        curve = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    complete_run_check(c, ref["run_id"], EPOCHS, curve)

    run = c.get_run(ref["run_id"])
    evaluation = json.loads((tmp_path / "m/evaluate.json").read_text())
    assert run.data.metrics["test/acc"] == pytest.approx(evaluation["test"]["accuracy"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    got = Path(c.download_artifacts(ref["run_id"], "evaluation/confusion_matrix.png", tmp_path))
    assert got.read_bytes() == (tmp_path / "p/confusion_matrix.png").read_bytes()
    # The bytes went through the server into its artifact folder.
    assert list((mlflow_server.folder / "artifacts").rglob("confusion_matrix.png"))

    meta = json.loads((tmp_path / "models/model.json").read_text())
    champion = c.get_model_version_by_alias("mnist-pg", "champion")
    assert champion.run_id == ref["run_id"] and champion.tags["sha256"] == meta["sha256"]
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    info = mlflow.models.get_model_info("models:/mnist-pg@champion")
    assert info.signature.inputs.inputs[0].shape == (-1, 28, 28)
    assert info.saved_input_example_info is not None
    model = mlflow.pyfunc.load_model("models:/mnist-pg@champion")
    example = np.zeros((2, 28, 28), np.float32)
    assert np.asarray(next(iter(model.predict(example).values()))).shape == (2, 10)

    # The rows are in PostgreSQL, not in some fallback store of the server.
    import psycopg

    with psycopg.connect(mlflow_server.database) as db:
        (runs,) = db.execute("SELECT count(*) FROM runs WHERE run_uuid = %s", [ref["run_id"]])
        assert runs == (1,)
        (versions,) = db.execute(
            "SELECT count(*) FROM model_versions WHERE name = 'mnist-pg'"
        ).fetchall()
        assert versions == (1,)
