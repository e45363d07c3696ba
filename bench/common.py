"""What several benchmarks need alike, written once so that their numbers mean the same thing.

Imported as ``common`` by the scripts in bench/ (run as ``python bench/NAME.py``, bench/ is
``sys.path[0]``) and as ``bench.common`` by those in bench/research/ (run as
``python -m bench.research.NAME`` from the repository root). Nothing here imports torch at
module level: the HTTP benchmarks import this module too and need no torch.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` overrides, each value read as YAML (so ``hidden=[1024, 1024]`` is a list
    and ``lr=0.003`` a float), as ``dvc exp run -S`` reads them."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"expected KEY=VALUE, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def accuracy_on_test(
    net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 10_000
) -> float:
    """Accuracy of ``net`` on (x, y), in eval mode and then back to the mode it was in.

    Every benchmark that reports a test accuracy goes through here, so "test accuracy" in
    bench/results is one definition: raw 0..255 pixels in (the network normalises), argmax
    out, in chunks so that a whole split fits any device.
    """
    import torch

    was_training = net.training
    net.eval()
    with torch.no_grad():
        correct = sum(
            int((net(x[i : i + chunk]).argmax(1) == y[i : i + chunk]).sum())
            for i in range(0, len(x), chunk)
        )
    net.train(was_training)
    return correct / len(y)


def random_images(count: int, seed: int = 0) -> np.ndarray:
    """``count`` different 28x28 uint8 images (seeded): request bodies that cost the model
    and the codecs what real pixels cost, the same in every benchmark that sends them."""
    return np.random.default_rng(seed).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)


def machine() -> dict[str, Any]:
    """Where a result was measured: seconds compare only within one machine, and the load
    average says whether other users shared its cores at the time."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "load_average_1min": os.getloadavg()[0],
    }
