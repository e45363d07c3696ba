"""Fixtures for the bulk-scoring tests: a small real ONNX model, digit images, pixel arrays.

The model is a seeded, untrained MLP exported with the project's exporter: its answers
are arbitrary but deterministic, so tests compare the scoring command with ONNX Runtime
run directly on the same pixels, never with a "right" digit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mnist_mlops.imaging import preprocess_image
from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME, inference_session, softmax
from support import ROOT
from support.digits import draw_digit, encode


@pytest.fixture(scope="session")
def score_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real exported ONNX model in a session temp dir."""
    import torch

    from mnist_mlops.export.to_onnx import export_onnx
    from mnist_mlops.train.network import MLP

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("score-model") / "model.onnx"
    export_onnx(MLP(hidden=(32,)), path)
    return path


@pytest.fixture(scope="session")
def direct_probs(score_model: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Probabilities from ONNX Runtime called directly: what scoring must reproduce."""
    session = inference_session(score_model)

    def run(pixels: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(pixels, dtype=np.float32).reshape(-1, 28, 28)
        return softmax(session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0])

    return run


@pytest.fixture(scope="session")
def pixels() -> np.ndarray:
    """300 uint8 MNIST-style images (bright blocks on noise)."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 40, size=(300, 28, 28)).astype(np.uint8)
    for i in range(len(images)):
        r, c = rng.integers(2, 20, size=2)
        images[i, r : r + 7, c : c + 7] = 230
    return images


@pytest.fixture(scope="session")
def pixels_npy(tmp_path_factory: pytest.TempPathFactory, pixels: np.ndarray) -> Path:
    path = tmp_path_factory.mktemp("arrays") / "pixels.npy"
    np.save(path, pixels)
    return path


def write_digit_folder(folder: Path, n: int = 24) -> dict[str, np.ndarray]:
    """``n`` drawn 7s as PNG and JPEG in nested folders; relative path -> model input."""
    expected = {}
    for i in range(n):
        left, top = 20 + 7 * i, 10 + 3 * i
        img = draw_digit(size=(300, 240), box=(left, top, left + 90, top + 160), width=12 + i % 9)
        rel = f"batch{i % 3}/sub/{i:03d}.png" if i % 2 else f"batch{i % 3}/{i:03d}.jpg"
        data = encode(img, "PNG" if i % 2 else "JPEG")
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        expected[rel] = preprocess_image(data)
    return expected


@pytest.fixture(scope="session")
def digit_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A folder of good digit images and what the service's preprocessing makes of each."""
    folder = tmp_path_factory.mktemp("digits")
    return folder, write_digit_folder(folder)


@pytest.fixture(scope="session")
def bad_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """Good digits plus a corrupt, a truncated, a non-image and a zero-byte file."""
    folder = tmp_path_factory.mktemp("bad-digits")
    good = write_digit_folder(folder, n=12)
    png = (folder / next(k for k in good if k.endswith(".png"))).read_bytes()
    (folder / "bad").mkdir()
    (folder / "bad/corrupt.png").write_bytes(png[:40] + bytes(200) + png[240:])
    (folder / "bad/truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "bad/notes.txt").write_text("not an image\n")
    (folder / "bad/empty.png").write_bytes(b"")
    return folder, good


def run_score(*args: str, cwd: Path, env: dict[str, str] | None = None):
    """``python -m pipeline.score args...`` in a subprocess, as a user runs it, in ``cwd``
    (where the default ``sqlite:///mlflow.db`` store lands)."""
    full_env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.score", *args, "--params", str(ROOT / "params.yaml")],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def score_cli() -> Callable[..., subprocess.CompletedProcess]:
    """Runs the scoring command: ``score_cli(model, input, output, cwd=tmp_path)``."""
    return run_score
