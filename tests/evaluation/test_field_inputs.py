"""The field sets' model inputs built once, in parallel, and handed to the reference stage
through a file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mnist_mlops.core.errors import DataFormatError
from mnist_mlops.evaluation.field_inputs import (
    build_field_inputs,
    build_set_inputs,
    load_field_inputs,
    save_field_inputs,
)
from mnist_mlops.evaluation.fieldsets import build_set


def _digits(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        top, left = rng.integers(3, 8), rng.integers(8, 14)
        images[i, top : top + 16, left : left + 4] = 255
    return images, np.arange(n) % 10


def test_parallel_sets_are_the_serial_sets():
    # Each set draws from its own generator: two processes build exactly what one does.
    x, y = _digits()
    names = ["canvas", "fonts", "pen"]
    serial = build_field_inputs(names, x, y, 6, 3, workers=1)
    parallel = build_field_inputs(names, x, y, 6, 3, workers=2)
    assert list(parallel) == names
    for name in names:
        a, b = serial[name], parallel[name]
        assert a.blobs == b.blobs
        np.testing.assert_array_equal(a.inputs, b.inputs)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.ok, b.ok)
    blobs, labels = build_set("pen", x, y, 6, 3)  # what the field stage used to build
    assert serial["pen"].blobs == blobs and serial["pen"].labels.tolist() == labels.tolist()


def test_saved_sets_load_back_without_their_images(tmp_path):
    x, y = _digits()
    sets = {
        "canvas": build_set_inputs("canvas", x, y, 5, 1),
        "fonts": build_set_inputs("fonts", x, y, 4, 1),
    }
    path = tmp_path / "field_inputs.npz"
    save_field_inputs(path, sets)
    loaded = load_field_inputs(path)
    assert list(loaded) == ["canvas", "fonts"]
    for name, s in sets.items():
        np.testing.assert_array_equal(loaded[name].inputs, s.inputs)
        np.testing.assert_array_equal(loaded[name].labels, s.labels)
        np.testing.assert_array_equal(loaded[name].ok, s.ok)
        assert loaded[name].blobs == []
    assert [p.name for p in tmp_path.iterdir()] == ["field_inputs.npz"]  # no temp file left


@pytest.mark.parametrize("content", [None, b"not an npz"])
def test_a_missing_or_foreign_file_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "field_inputs.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataFormatError, match="rerun the field stage"):
        load_field_inputs(path)


def test_pools_start_in_a_process_that_has_run_opencv_threads():
    # A forked worker of such a process hung for ever in cv2.setNumThreads (the prepare
    # stage's test did, mid-suite); the pools spawn theirs. Its own process, with a bound.
    code = (
        "import cv2, numpy as np\n"
        "from mnist_mlops.evaluation.field_inputs import build_field_inputs\n"
        "big = np.random.rand(2000, 2000).astype(np.float32)\n"
        "for _ in range(3): cv2.GaussianBlur(big, (9, 9), 0)\n"
        "x = np.zeros((20, 28, 28), np.uint8); x[:, 5:23, 12:16] = 255\n"
        "sets = build_field_inputs(['canvas', 'fonts'], x, np.arange(20) % 10, 3, 0, workers=2)\n"
        "print(sorted(sets), cv2.getNumThreads())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[:2] == ["['canvas',", "'fonts']"]
