"""Several training processes logging to one sqlite MLflow store at once lose nothing.

Three real ``python -m pipeline.train`` processes start together on the
synthetic data with one tracking URI whose database does not exist yet, so
they also race to create the schema (what parallel ``dvc exp run`` workers
do). Afterwards every run must be in the store, FINISHED, with a full
per-epoch history of every metric.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from support import ROOT
from support.pipeline_repo import HANG_S
from support.tracked_run import HISTORY_KEYS

N_RUNS = 3
EPOCHS = 6

pytestmark = pytest.mark.slow


@pytest.mark.timeout(2 * HANG_S)
def test_parallel_trainings_share_one_sqlite_store(processed_dir, tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(
        hidden=[32], max_epochs=EPOCHS, batch_size=32, accelerator="cpu", devices="1"
    )
    params["mlflow"].update(tracking_uri=uri, experiment="concurrent")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    env.pop("MLFLOW_TRACKING_URI", None)  # it would win over the params' store

    procs: list[tuple[subprocess.Popen, Path]] = []
    try:
        for i in range(N_RUNS):
            out = tmp_path / f"run{i}"
            out.mkdir()
            with (out / "stderr.log").open("wb") as err:
                procs.append(
                    (
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-m",
                                "pipeline.train",
                                str(processed_dir),
                                str(out / "model.ckpt"),
                                "--params",
                                str(tmp_path / "params.yaml"),
                                "--metrics",
                                str(out / "train.json"),
                                "--curve",
                                str(out / "curve.csv"),
                            ],
                            cwd=tmp_path,
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=err,
                            start_new_session=True,
                        ),
                        out,
                    )
                )
        deadline = time.monotonic() + HANG_S  # a hang guard: each ends when it has trained
        for proc, _ in procs:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)

    for proc, out in procs:
        stderr = (out / "stderr.log").read_text(errors="replace")
        assert proc.returncode == 0, stderr
        assert "database is locked" not in stderr, stderr

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("concurrent")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    expected_ids = {json.loads((out / "run.json").read_text())["run_id"] for _, out in procs}
    assert {r.info.run_id for r in runs} == expected_ids and len(expected_ids) == N_RUNS

    curves = []
    for run in runs:
        assert run.info.status == "FINISHED", run.info
        assert "train/seconds" in run.data.metrics
        assert run.data.params["max_epochs"] == str(EPOCHS)
        curve = {}
        for key in HISTORY_KEYS:
            history = client.get_metric_history(run.info.run_id, key)
            assert len(history) == EPOCHS, (run.info.run_id, key, len(history))
            curve[key] = [m.value for m in sorted(history, key=lambda m: m.step)]
        curves.append(curve)
    # Same seed, same data, deterministic CPU training: contention must not change a number.
    assert all(c == curves[0] for c in curves[1:])
