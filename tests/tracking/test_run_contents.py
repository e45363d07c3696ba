"""A tracked training run carries what MLflow 3 users expect (sqlite store, in process)."""

from __future__ import annotations

import pytest

from mnist_mlops.tracking.runs import client

pytestmark = pytest.mark.slow


def test_run_has_params_once_curves_datasets_and_system_metrics(tracked_run, complete_run_check):
    result, uri = tracked_run.result, tracked_run.tracking_uri
    complete_run_check(client(uri), result.run_id, tracked_run.config.max_epochs, result.history)
    # Artifacts of a sqlite store live beside the database, not in the working directory.
    artifact_uri = client(uri).get_run(result.run_id).info.artifact_uri
    assert artifact_uri.startswith((tracked_run.folder / "mlruns").as_uri()), artifact_uri
