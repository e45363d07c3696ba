"""The pause points the fault tests hold stages at (``MNIST_PAUSE_AT``): inert unless asked."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from mnist_mlops.core import pause
from mnist_mlops.core.pause import PAUSE_ENV, pause_here


@pytest.fixture(autouse=True)
def _fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pause, "_paused", set())  # "once per process", per test


def _wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.01)


def test_a_point_waits_while_its_file_exists_and_only_once(tmp_path: Path, monkeypatch):
    marker = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_ENV, f"checkpoint:{marker}")
    returned = threading.Event()
    waiter = threading.Thread(target=lambda: (pause_here("checkpoint"), returned.set()))
    waiter.start()
    _wait_until(marker.exists, "pause file")
    assert marker.read_text().split() == [str(os.getpid())]
    assert not returned.is_set()  # it cannot return while the file is there
    marker.unlink()
    waiter.join(60)
    assert returned.is_set()
    pause_here("checkpoint")  # the second time through the same point: no pause
    assert not marker.exists()


@pytest.mark.parametrize("value", ["", "onnx-staged:{m}", "checkpoint:", "checkpoint{m}"])
def test_unset_or_another_point_does_not_pause(value: str, tmp_path: Path, monkeypatch):
    marker = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_ENV, value.format(m=marker))
    pause_here("checkpoint")
    assert not marker.exists() and list(tmp_path.iterdir()) == []


def test_an_unknown_point_is_a_programming_error(monkeypatch):
    monkeypatch.delenv(PAUSE_ENV, raising=False)
    with pytest.raises(ValueError, match="unknown pause point"):
        pause_here("chekpoint")


@pytest.mark.slow
def test_training_pauses_once_its_first_checkpoint_is_written(
    processed_dir, tmp_path, monkeypatch, repo_params
):
    import tempfile

    import torch

    from mnist_mlops.core.config import TrainConfig
    from mnist_mlops.train.pause import pause_hooks
    from mnist_mlops.train.training import TrainInputs, train

    marker, scratch = tmp_path / "paused", tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv(PAUSE_ENV, f"checkpoint:{marker}")
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where training keeps checkpoints
    seen: list[int] = []

    def look_then_resume() -> None:
        _wait_until(marker.exists, "pause file", timeout=600)
        for ckpt in scratch.glob("mnist-ckpt-*/*.ckpt"):
            seen.append(torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"])
        marker.unlink()

    resumer = threading.Thread(target=look_then_resume, daemon=True)
    resumer.start()
    cfg = TrainConfig.from_params(
        repo_params, hidden=(16,), max_epochs=2, batch_size=64, accelerator="cpu", devices="1"
    )
    result = train(cfg, TrainInputs(processed_dir), tmp_path / "m.ckpt", callbacks=pause_hooks())
    resumer.join(60)
    assert seen == [0]  # paused with exactly epoch 1's checkpoint on disk (epochs count from 0)
    assert result.epochs == 2 and [h["epoch"] for h in result.history] == [1, 2]
    assert pause_hooks() == []  # the point paused once; later runs in this process do not
