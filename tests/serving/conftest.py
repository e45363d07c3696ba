"""Fixtures for the serving tests: a small real ONNX model, one server of it, its answers.

The model is a seeded, untrained MLP exported with the project's own exporter,
so its answers are arbitrary but deterministic: tests compare the service with
ONNX Runtime run offline on the same input, never with a "right" digit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from mnist_mlops.inference.model_card import ModelCard
from serving.schemas import example_pixels
from support.bento_process import Served, serving
from support.gated import gated_export


def write_test_model(folder: Path) -> Path:
    """Export a seeded MLP to ``folder/model.onnx`` with the pipeline's metadata beside it."""
    import torch  # only the tests need torch, to make a model

    from mnist_mlops.export.to_onnx import export_onnx
    from mnist_mlops.train.network import MLP

    torch.manual_seed(0)
    path = folder / "model.onnx"
    export_onnx(MLP(hidden=(32,)), path)
    ModelCard.for_model(path, mean=0.1307, std=0.3081).write_beside(path)
    return path


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real exported ONNX model (with model.json) in a session temp dir."""
    return write_test_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def served_choice(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test model as the gate leaves an export: float and int8 artifacts with their
    cards, and ``served.json`` choosing the int8 one."""
    return gated_export(model_path, tmp_path_factory.mktemp("gated"))


@pytest.fixture(scope="session")
def served_model(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One ``bentoml serve`` of the test model with default settings, for the whole session.

    Shared by the modules whose tests only send requests (status codes, bodies, the
    OpenAPI contract); a test that needs other settings, exact metric counts, a cold
    start or a server to stop starts its own. Stopped when the session ends.
    """
    with serving(model_path, tmp_path_factory.mktemp("bentoml_home")) as served:
        yield served


@pytest.fixture(scope="session")
def offline_logits(model_path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Run the model with ONNX Runtime directly: (N, 28, 28) pixels -> (N, 10) logits."""
    from mnist_mlops.export.to_onnx import (
        INPUT_NAME,
        OUTPUT_NAME,
        as_model_input,
        inference_session,
    )

    session = inference_session(model_path)

    def run(pixels: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: as_model_input(pixels)})[0]

    return run


@pytest.fixture(scope="session")
def stroke_pixels() -> np.ndarray:
    """A vertical stroke (roughly an MNIST "1"), 28x28 0..255: the API docs' example."""
    return np.asarray(example_pixels(), dtype=np.float32)
