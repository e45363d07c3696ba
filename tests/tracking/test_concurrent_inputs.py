"""Runs that log the same new dataset at the same moment all get it (real MLflow server
on real PostgreSQL, where the store's look-up-then-insert let the second run fail)."""

from __future__ import annotations

import threading
import uuid

import pytest

from mnist_mlops.tracking.inputs import log_inputs
from mnist_mlops.tracking.runs import client

pytestmark = pytest.mark.slow

WRITERS = 6  # runs logging one dataset together, as queued experiments on one server do
ROUNDS = 8  # fresh datasets, each a new chance for the look-ups to interleave


def _dataset_input(digest: str):  # noqa: ANN202 - MLflow entity, imported lazily
    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(name="mnist-train", digest=digest, source_type="local",
                      source='{"uri": "data/processed/mnist.npz"}')  # fmt: skip
    return DatasetInput(dataset=dataset, tags=[InputTag("mlflow.data.context", "train")])


def test_concurrent_runs_logging_one_new_dataset_all_get_it(mlflow_server):
    c = client(mlflow_server.uri)
    experiment_id = c.create_experiment(f"inputs-{uuid.uuid4().hex[:8]}")
    errors: list[BaseException] = []
    runs: list[tuple[str, str]] = []  # (run id, digest it logged)
    for _ in range(ROUNDS):
        digest = uuid.uuid4().hex[:8]
        ids = [c.create_run(experiment_id).info.run_id for _ in range(WRITERS)]
        start = threading.Barrier(WRITERS)

        def write(run_id: str, digest: str = digest, start: threading.Barrier = start) -> None:
            start.wait()
            try:  # each writer its own client, as separate stage processes have
                log_inputs(client(mlflow_server.uri), run_id, [_dataset_input(digest)])
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(run_id,)) for run_id in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        runs += [(run_id, digest) for run_id in ids]
    assert errors == []
    for run_id, digest in runs:
        inputs = c.get_run(run_id).inputs.dataset_inputs
        assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [("mnist-train", digest)]
    # One row per dataset, shared by its runs: the retry linked it, it did not duplicate.
    import psycopg

    with psycopg.connect(mlflow_server.database) as db:
        rows = db.execute("SELECT digest, count(*) FROM datasets WHERE experiment_id = %s "
                          "GROUP BY digest", (int(experiment_id),)).fetchall()  # fmt: skip
    assert sorted(rows) == sorted((digest, 1) for digest in {d for _, d in runs})


def test_other_refusals_are_not_retried(mlflow_server):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="(?i)run .* not found|does not exist"):
        log_inputs(client(mlflow_server.uri), uuid.uuid4().hex, [_dataset_input("00000000")])
