"""The corrections stage in a real ``dvc repro`` (synthetic data, tiny model, minutes):
without corrections the pipeline runs as before and an empty dataset is versioned; an
export of new corrections makes ``dvc repro`` retrain and gate on them; nothing reruns
when nothing changed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pipeline_repo import build_repo, repo_env
from pipeline_repo import run as run_in

from mnist_mlops.monitoring.feedback import FeedbackStore
from mnist_mlops.monitoring.inference_log import InferenceLog
from mnist_mlops.monitoring.settings import MonitoringSettings

pytestmark = pytest.mark.slow
REPRO_S = 1800  # a generous deadline: two shared CPU cores can be slow


class Quiet:
    def written(self, records: int) -> None: ...

    def dropped(self, reason: str, records: int) -> None:
        raise AssertionError(f"log dropped {records} records: {reason}")

    def failed(self, stage: str) -> None:
        raise AssertionError(f"log failed at {stage}")


@pytest.fixture(scope="module")
def repo(tmp_path_factory, synthetic_mirror) -> tuple[Path, dict[str, str]]:
    path = build_repo(tmp_path_factory.mktemp("stage") / "repo", synthetic_mirror)
    return path, repo_env(path)


def field(path: Path) -> dict:
    return json.loads((path / "metrics" / "field.json").read_text())


def log_and_correct(path: Path, n: int) -> list[str]:
    """What the service does: log n answered images, then users correct every one."""
    settings = MonitoringSettings(
        log_dir=path / "monitoring" / "inference",
        feedback_uri=f"sqlite:///{path / 'monitoring' / 'feedback.sqlite'}",
    )
    store = FeedbackStore.from_uri(settings.feedback_uri)
    log = InferenceLog(settings, "v", "0" * 64, Quiet(), index=store)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, 28, 28)).astype(np.float32)
    ids = log.record(pixels, np.full((n, 10), 0.1), endpoint="/predict_batch", source="batch")
    assert log.flush()
    log.close()
    for i, request_id in enumerate(ids):
        assert store.add(request_id, i % 10)
    store.close()
    return ids


def test_no_corrections_run_as_before_and_an_empty_dataset_is_versioned(repo):
    path, env = repo
    out = run_in(["dvc", "repro", "field"], path, env, timeout=REPRO_S).stdout
    assert "Running stage 'corrections'" in out and "Running stage 'train'" in out
    summary = json.loads((path / "data/corrections/summary.json").read_text())
    assert summary["parts"] == {"train": 0, "holdout": 0}
    assert "corrections" not in field(path)["sets"] and field(path)["champion"]["promoted"]
    assert not (path / "monitoring").exists()  # the export created no store of its own
    lock = (path / "dvc.lock").read_text()
    assert "data/corrections" in lock
    again = run_in(["dvc", "repro", "field"], path, env, timeout=REPRO_S).stdout
    assert "Running stage" not in again, again


def test_exported_corrections_retrain_and_are_gated_on(repo):
    path, env = repo
    ids = log_and_correct(path, 60)
    line = run_in([sys.executable, "-m", "pipeline.export_corrections", "data/corrections"],
                  path, env).stdout  # fmt: skip
    summary = json.loads((path / "data/corrections/summary.json").read_text())
    assert sum(summary["parts"].values()) == len(ids) and summary["no_input"] == 0
    assert f"holdout {summary['parts']['holdout']}" in line
    out = run_in(["dvc", "repro", "field"], path, env, timeout=REPRO_S).stdout
    assert "Running stage 'train'" in out and "Running stage 'field'" in out
    scored = field(path)
    assert scored["sets"]["corrections"]["n"] == summary["parts"]["holdout"] > 0
    assert scored["champion"]["rescored_previous"]  # the champion had never seen them
    again = run_in(["dvc", "repro", "field"], path, env, timeout=REPRO_S).stdout
    assert "Running stage" not in again, again
