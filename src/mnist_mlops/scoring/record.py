"""One MLflow run per scoring job: what was scored, with which model, how fast.

A scoring job's output file is the record of truth; the run is how a team finds
out later which model version scored which data. Failing to reach the tracking
store is therefore a warning, not a failed job.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

EXPERIMENT = "mnist-scoring"
DIGEST_CHARS = 32  # MLflow's dataset digest column is short; the full one is a tag


def record_run(tracking_uri: str, summary: Any) -> str | None:
    """Log ``summary`` (a :class:`~mnist_mlops.scoring.job.Summary`) as a run; its id or None."""
    try:
        from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

        from mnist_mlops.tracking.inputs import log_inputs
        from mnist_mlops.tracking.runs import client, prepare_store

        experiment_id = prepare_store(tracking_uri, EXPERIMENT)
        c = client(tracking_uri)
        run = c.create_run(experiment_id, run_name=f"score-{summary.model.version}")
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        params = {
            "model": summary.model.ref,
            "model_version": summary.model.version,
            "model_sha256": summary.model.sha256,
            "model_precision": summary.model.precision or "unknown",
            "input": summary.input,
            "input_kind": summary.kind,
            "engine": summary.engine,
            "output": summary.output,
        }
        metrics = {
            "score/inputs": summary.inputs,
            "score/scored": summary.scored,
            "score/failed": summary.failed,
            "score/images_per_s": summary.images_per_s,
            "score/seconds": summary.seconds,
        }
        c.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag("dataset_sha256", summary.digest)],
        )
        dataset = Dataset(
            name=f"score-{summary.kind}",
            digest=summary.digest[:DIGEST_CHARS],
            source_type="local",
            source=json.dumps({"uri": summary.input}),
        )
        context = InputTag(key="mlflow.data.context", value="scoring")
        log_inputs(c, run_id, [DatasetInput(dataset=dataset, tags=[context])])
        c.set_terminated(run_id, "FINISHED")
        return run_id
    except Exception as exc:  # tracking is the browsing view, never a reason to fail the job
        log.warning("scoring run not recorded in %s: %s", tracking_uri, exc)
        return None
