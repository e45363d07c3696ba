"""train.precision "auto": bfloat16 where the CPU computes it natively, float32 elsewhere."""

from __future__ import annotations

import pytest

from mnist_mlops.core.config import TrainConfig
from mnist_mlops.train import trainer
from mnist_mlops.train.trainer import resolve_precision


def cfg(repo_params, **overrides) -> TrainConfig:
    return TrainConfig.from_params(repo_params, **overrides)


def test_an_explicit_precision_is_kept(repo_params):
    for value in ("32-true", "bf16-mixed", "16-mixed"):
        assert resolve_precision(cfg(repo_params, precision=value, accelerator="cpu")) == value


@pytest.mark.parametrize("native, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_on_a_cpu_follows_its_bfloat16_hardware(repo_params, monkeypatch, native, expected):
    # The one probe of the hardware is replaced: this machine cannot be both kinds of CPU.
    monkeypatch.setattr(trainer, "native_bf16_cpu", lambda: native)
    assert resolve_precision(cfg(repo_params, precision="auto", accelerator="cpu")) == expected


def test_auto_on_a_gpu_is_float32(repo_params, monkeypatch):
    monkeypatch.setattr(trainer, "native_bf16_cpu", lambda: True)
    assert resolve_precision(cfg(repo_params, precision="auto", accelerator="gpu")) == "32-true"


def test_training_records_the_precision_it_ran_with(tracked_run):
    # The run's own record, read from the Trainer, is what "auto" resolves to here.
    assert tracked_run.result.precision == resolve_precision(tracked_run.config)
    assert tracked_run.result.precision in ("bf16-mixed", "32-true")
