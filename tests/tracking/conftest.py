"""The checks every tracked training run must pass, on any store (sqlite or a server)."""

from __future__ import annotations

from typing import Any

import pytest

HISTORY_KEYS = ("train/loss", "train/acc", "val/loss", "val/acc")


def check_complete_run(client: Any, run_id: str, epochs: int, curve: list[dict]) -> None:
    """Params once each, curves equal to the stage's, dataset inputs, system metrics."""
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED", run.info
    params = run.data.params
    assert params["max_epochs"] == str(epochs) and "dropout" in params
    # Each parameter once, under its flat name (no Lightning "cfg/..." copies).
    assert not [k for k in params if "/" in k], sorted(params)
    for key in HISTORY_KEYS:
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        assert [m.value for m in history] == pytest.approx([row[key] for row in curve]), key
        assert len(history) == epochs
    assert run.data.metrics["train/seconds"] > 0
    inputs = {
        next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset
        for d in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"train", "val"}, inputs
    assert all(len(d.digest) >= 8 and d.source_type == "local" for d in inputs.values())
    assert inputs["train"].digest != inputs["val"].digest
    system = {k for k in run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system


@pytest.fixture
def complete_run_check():
    """``check(client, run_id, epochs, curve)``: the assertions above, as a fixture."""
    return check_complete_run
