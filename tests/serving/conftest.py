"""Fixtures for the serving tests: a small real ONNX model and digit-like test images.

The model is a seeded, untrained MLP exported with the project's own exporter,
so its answers are arbitrary but deterministic: tests compare the service with
ONNX Runtime run offline on the same input, never with a "right" digit.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_mlops.fileio import sha256_file, write_json

REPO = Path(__file__).resolve().parents[2]
# A "7": top bar then a slanted stem, as fractions of the drawing box (x, y).
SEVEN = [(0.05, 0.05), (0.95, 0.05), (0.45, 0.95)]


def write_test_model(folder: Path) -> Path:
    """Export a seeded MLP to ``folder/model.onnx`` with the pipeline's metadata beside it."""
    import torch  # only the tests need torch, to make a model

    from mnist_mlops.export import export_onnx
    from mnist_mlops.model import MLP

    torch.manual_seed(0)
    path = folder / "model.onnx"
    export_onnx(MLP(hidden=(32,)), path)
    digest = sha256_file(path)
    write_json(
        folder / "model.json",
        {
            "format": "onnx",
            "input": "pixels",
            "input_shape": ["batch", 28, 28],
            "output": "logits",
            "sha256": digest,
            "version": digest[:12],
            "mean": 0.1307,
            "std": 0.3081,
            "test_accuracy": 0.0,
            "mlflow_run_id": "test",
            "created": datetime.now(timezone.utc).isoformat(),
        },
    )
    return path


def draw_digit(
    size: tuple[int, int] = (300, 200),
    box: tuple[int, int, int, int] = (30, 20, 130, 180),
    ink: int | tuple[int, ...] = 0,
    background: int | tuple[int, ...] = 255,
    mode: str = "L",
    width: int = 20,
) -> Image.Image:
    """A "7" drawn with Pillow inside ``box`` (left, top, right, bottom) of a ``size`` canvas."""
    img = Image.new(mode, size, background)
    left, top, right, bottom = box
    points = [(left + x * (right - left), top + y * (bottom - top)) for x, y in SEVEN]
    ImageDraw.Draw(img).line(points, fill=ink, width=width, joint="curve")
    return img


def encode(img: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    """Encode ``img`` as ``fmt`` bytes."""
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims ``width`` x ``height`` pixels.

    The IHDR chunk of a real 8x8 PNG is patched (and its CRC recomputed): a few
    hundred bytes that would decode to gigabytes, i.e. a decompression bomb.
    """
    data = bytearray(encode(Image.new("L", (8, 8))))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real exported ONNX model (with model.json) in a session temp dir."""
    return write_test_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def offline_logits(model_path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Run the model with ONNX Runtime directly: (N, 28, 28) pixels -> (N, 10) logits."""
    from mnist_mlops.export import INPUT_NAME, OUTPUT_NAME, as_model_input, inference_session

    session = inference_session(model_path)

    def run(pixels: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: as_model_input(pixels)})[0]

    return run


@pytest.fixture(scope="session")
def digit_png() -> bytes:
    """A black-on-white "7", off-centre on a 300x200 canvas, as PNG bytes."""
    return encode(draw_digit())


# The helpers as fixtures, so test modules need not import conftest.
@pytest.fixture(scope="session")
def make_digit() -> Callable[..., Image.Image]:
    """:func:`draw_digit`."""
    return draw_digit


@pytest.fixture(scope="session")
def encode_image() -> Callable[..., bytes]:
    """:func:`encode`."""
    return encode


@pytest.fixture(scope="session")
def png_bomb() -> Callable[[int, int], bytes]:
    """:func:`png_claiming_size`."""
    return png_claiming_size
