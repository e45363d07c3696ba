"""Fixtures for running the benchmarks: a small real model, a runner, and a guard on results.

Every benchmark is run as its users run it (a subprocess from the repository root), in its
quick mode, on synthetic data and an untrained model, writing only under ``tmp_path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import ROOT

RESULTS = ROOT / "bench" / "results"
# A guard against a hung benchmark, not a guess at how long one takes.
BENCH_HANG_S = 1800


def run_bench(*args: str) -> subprocess.CompletedProcess:
    """``python ARGS...`` from the repository root, as the benchmarks' docstrings run them;
    asserts it exits 0. No tracking server or mirror from the caller's environment leaks in."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MNIST_MIRROR")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BENCH_HANG_S,
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="session")
def bench() -> Callable[..., subprocess.CompletedProcess]:
    """Runs one benchmark: ``bench("bench/preprocess_speed.py", "--quick", "--out", out)``."""
    return run_bench


@pytest.fixture(scope="session")
def bench_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, untrained MLP exported by the project's exporter, its model card beside it
    (what the services check): its answers are arbitrary, which no benchmark minds."""
    import torch

    from mnist_mlops.export.to_onnx import export_onnx
    from mnist_mlops.inference.model_card import ModelCard
    from mnist_mlops.train.network import MLP

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bench_model") / "model.onnx"
    export_onnx(MLP(hidden=(32,)), path)
    ModelCard.for_model(path, mean=0.1307, std=0.3081).write_beside(path)
    return path


@pytest.fixture(scope="session")
def bench_int8_model(bench_model: Path) -> Path:
    """``bench_model`` quantized to int8 as the export does it (dynamic, weights int8),
    beside it as ``model.int8.onnx`` with its own card: the second model of the
    benchmarks' ``--models`` comparisons."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from mnist_mlops.inference.model_card import ModelCard

    path = bench_model.with_name("model.int8.onnx")
    quantize_dynamic(bench_model, path, weight_type=QuantType.QInt8)
    card = ModelCard.read_beside(bench_model)
    ModelCard.for_model(path, mean=card.mean, std=card.std, precision="int8").write_beside(path)
    return path


@pytest.fixture(autouse=True)
def _committed_results_untouched() -> Iterator[None]:
    """No quick run may write into bench/results: those files are what the docs report."""

    def snapshot() -> dict[str, tuple[int, int]]:
        return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in RESULTS.iterdir()}

    before = snapshot()
    yield
    assert snapshot() == before, "a benchmark wrote into bench/results"
