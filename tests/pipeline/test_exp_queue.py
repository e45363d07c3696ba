"""Queued DVC experiments run two at a time and each is exactly one complete MLflow run.

Real ``dvc exp run --queue`` (2 experiments, different learning rates) and
``dvc queue start --jobs 2`` in a temporary git+DVC repo on synthetic data; each
experiment runs the real train, evaluate, export and field stages. Once against a real
PostgreSQL-backed ``mlflow server`` (started by scripts/mlflow_server.sh, reached
only through ``MLFLOW_TRACKING_URI`` while params.yaml still names sqlite) and once
with the zero-setup default ``sqlite:///mlflow.db``, which the experiments'
temporary workspaces must resolve to the main workspace's file.

Then ``dvc exp show`` and MLflow must list the same experiments (the run name and
``dvc_experiment`` tag are DVC's experiment name) with the same learning rate and
test accuracy, none lost, none duplicated; every run is complete (params once,
per-epoch histories, dataset inputs, system metrics, evaluation artifacts) and the
Model Registry holds one version per experiment, the ``champion`` alias on one of
them, logged with a signature and an input example and loadable through the store.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_mlops.tracking.runs import client
from support.pipeline_repo import HANG_S, build_repo, repo_env, run

pytestmark = pytest.mark.slow

# Two, run at once by two workers: both create their MLflow run and register their model
# at the same time, the race this test is about.
LRS = (0.002, 0.008)
JOBS = 2
EXPERIMENT_HANG_S = 1200  # train, evaluate, export and score one: minutes even when busy
STATUS_EVERY_S = 30  # `dvc queue status` costs a second of CPU: asked now and then, for failures


def _saved_experiments(repo: Path, env: dict[str, str]) -> int:
    """How many experiments the queue has finished and saved (DVC's refs/exps, read by git:
    milliseconds, where ``dvc queue status`` takes a second of CPU)."""
    names = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo, env).stdout
    # refs/exps/<baseline sha, split 2/38>/<name>; the queue's own refs (celery/, exec/) differ.
    return len(re.findall(r"^refs/exps/[0-9a-f]{2}/[0-9a-f]{38}/[^/\s]+$", names, re.M))


def _finished(repo: Path, env: dict[str, str], n: int) -> str:
    """Wait until ``dvc queue status`` shows nothing queued or running; return the table.

    The wait ends when the queue does. Its deadline, a hang guard, moves with progress:
    EXPERIMENT_HANG_S for each experiment still to finish (JOBS of them at once), counted
    from the last one that finished, so more experiments get more time, and a slow
    machine that keeps finishing them is never cut off.
    """
    done, last_status, status = 0, time.monotonic(), ""
    deadline = time.monotonic() + EXPERIMENT_HANG_S * n / JOBS
    while True:
        saved = _saved_experiments(repo, env)
        if saved > done:
            done, deadline = saved, time.monotonic() + EXPERIMENT_HANG_S * (n - saved) / JOBS
        if saved >= n or time.monotonic() - last_status > STATUS_EVERY_S:
            status = run(["dvc", "queue", "status"], repo, env).stdout
            last_status = time.monotonic()
            if not any(word in status for word in ("Queued", "Running")):
                return status
        assert time.monotonic() < deadline, f"no experiment finished for too long:\n{status}"
        time.sleep(1)  # between two looks at the refs


def _start_workers(repo: Path, env: dict[str, str], jobs: int) -> None:
    """``dvc queue start``; its detached workers keep stdout open, so it goes to a file."""
    log = repo.parent / "queue-start.log"
    with open(log, "w") as out:
        proc = subprocess.run(
            ["dvc", "queue", "start", "--jobs", str(jobs)],
            cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, log.read_text()


def _failure_logs(repo: Path, env: dict[str, str], status: str) -> str:
    """``dvc queue logs`` of every task that did not succeed (for the assertion message)."""
    failed = [line.split()[0] for line in status.splitlines() if "Failed" in line]
    logs = [subprocess.run(["dvc", "queue", "logs", task], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=60).stdout[-3000:]
            for task in failed]  # fmt: skip
    return status + "\n".join(logs)


def _dvc_experiments(repo: Path, env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Experiment name -> (train.lr, test accuracy), from ``dvc exp show --json``."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env).stdout)
    found = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                data = rev["data"]
                lr = data["params"]["params.yaml"]["data"]["train"]["lr"]
                acc = data["metrics"]["metrics/evaluate.json"]["data"]["test"]["accuracy"]
                found[rev["name"]] = (float(lr), float(acc))
    return found


def _check_champion_model(uri: str) -> None:
    """The champion is an MLflow ONNX model with signature and example, loadable and usable."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    info = mlflow.models.get_model_info("models:/mnist-mlp@champion")
    assert info.signature.inputs.inputs[0].shape == (-1, 28, 28)
    assert info.saved_input_example_info is not None
    model = mlflow.pyfunc.load_model("models:/mnist-mlp@champion")
    (logits,) = model.predict(np.zeros((2, 28, 28), np.float32)).values()
    assert np.asarray(logits).shape == (2, 10)


def _check_rows_in_postgres(server, experiment_id: str, n_runs: int) -> None:
    """The runs are rows of the PostgreSQL database, not of some fallback store."""
    import psycopg

    with psycopg.connect(server.database) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM runs WHERE experiment_id = %s", [int(experiment_id)]
        ).fetchone()
    assert count == n_runs


@pytest.mark.timeout(2 * HANG_S)  # a hang guard; the queue's own wait moves with its progress
@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_queued_experiments_are_each_one_complete_run(
    backend, request, tmp_path, synthetic_mirror, complete_run_check
):
    experiment = f"queue-{backend}"
    repo = build_repo(tmp_path / "repo", synthetic_mirror, mlflow={"experiment": experiment})
    if backend == "postgres":
        uri = request.getfixturevalue("mlflow_server").uri
        env = repo_env(repo, MLFLOW_TRACKING_URI=uri)
    else:
        uri = f"sqlite:///{repo / 'mlflow.db'}"  # params.yaml's relative default, resolved
        env = repo_env(repo)
    # Data stages once, committed: the experiments only train, evaluate, export and score.
    run(["dvc", "repro", "prepare"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "data"], repo, env)
    for lr in LRS:
        # Up to the field stage, which moves the champion alias (package needs no MLflow).
        run(["dvc", "exp", "run", "--queue", "field", "-S", f"train.lr={lr}"], repo, env)
    started = time.monotonic()
    try:
        _start_workers(repo, env, jobs=JOBS)
        status = _finished(repo, env, len(LRS))
    finally:
        subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=repo, env=env, timeout=60,
                       capture_output=True)  # fmt: skip
    seconds = time.monotonic() - started
    assert status.count("Success") == len(LRS), _failure_logs(repo, env, status)

    exps = _dvc_experiments(repo, env)
    assert sorted(lr for lr, _ in exps.values()) == sorted(LRS), exps
    c = client(uri)
    exp_id = c.get_experiment_by_name(experiment).experiment_id
    runs = c.search_runs([exp_id])
    assert len(runs) == len(LRS), [r.info.run_name for r in runs]  # none lost, none extra
    by_name = {r.data.tags["dvc_experiment"]: r for r in runs}
    assert set(by_name) == set(exps), (sorted(by_name), sorted(exps))
    for name, (lr, acc) in exps.items():
        r = by_name[name]
        complete_run_check(c, r.info.run_id, epochs=2)
        assert r.info.run_name == name and float(r.data.params["lr"]) == lr
        assert r.data.metrics["test/acc"] == pytest.approx(acc)
        assert "export/max_abs_diff" in r.data.metrics
        assert "field/acc_photo" in r.data.metrics
        evaluation = {a.path for a in c.list_artifacts(r.info.run_id, "evaluation")}
        assert "evaluation/confusion_matrix.png" in evaluation
    versions = c.search_model_versions("name = 'mnist-mlp'")
    assert sorted(v.run_id for v in versions) == sorted(r.info.run_id for r in runs)
    champion = c.get_model_version_by_alias("mnist-mlp", "champion")
    assert champion.run_id in {r.info.run_id for r in runs}
    _check_champion_model(uri)
    if backend == "postgres":
        server = request.getfixturevalue("mlflow_server")
        _check_rows_in_postgres(server, exp_id, len(LRS))
        # Artifacts went through the server into its artifact folder.
        assert len(list((server.folder / "artifacts").rglob("confusion_matrix.png"))) >= len(LRS)
    print(f"\n{backend}: {len(LRS)} experiments queued, {len(exps)} in dvc exp show, "
          f"{len(runs)} MLflow runs, queue ran {seconds:.0f} s with --jobs {JOBS}")  # fmt: skip
