"""Export the trained MLP to ONNX and prove the export computes the same thing.

The graph takes raw pixels (float32, 0..255) shaped (N, 28, 28), with a dynamic
batch axis; normalisation is inside the graph (see
:class:`~mnist_mlops.train.network.PixelNormalise`). ONNX fixes an input's rank (the
checker rejects a rank-free input), so callers holding (N, 784) rows reshape
them with :func:`as_model_input`, a free view. Parity is checked on a whole
split with ONNX Runtime before the file is moved into place.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from mnist_mlops.core.errors import UserError
from mnist_mlops.core.fileio import atomic_path
from mnist_mlops.core.pause import pause_here
from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME, as_model_input, inference_session

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "Parity",
    "as_model_input",
    "check_parity",
    "export_and_verify",
    "export_onnx",
    "inference_session",
]


@dataclass(frozen=True)
class Parity:
    """How closely ONNX Runtime reproduces PyTorch on a set of images."""

    n_images: int
    max_abs_diff: float
    argmax_mismatches: int

    def ok(self, atol: float) -> bool:
        return self.max_abs_diff <= atol and self.argmax_mismatches == 0


def export_onnx(net: torch.nn.Module, path: str | os.PathLike[str], opset: int = 18) -> None:
    """Export ``net`` (in eval mode, on CPU) to ONNX at ``path``, checked by onnx.checker."""
    net = net.to("cpu").eval()
    example = torch.zeros(2, 28, 28, dtype=torch.float32)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not actionable here
        torch.onnx.export(
            net,
            (example,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=False,  # TorchScript exporter: small graph, no onnxscript rewrite needed
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
        model = onnx.load(str(tmp))
        model.doc_string = "MNIST MLP: raw pixels 0..255 as float32 (N, 28, 28) -> 10 logits"
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(tmp))


def check_parity(
    net: torch.nn.Module,
    onnx_path: str | os.PathLike[str],
    images: np.ndarray,
    batch_size: int = 10_000,
) -> Parity:
    """Compare PyTorch and ONNX Runtime logits on ``images`` (uint8 (N,28,28))."""
    net = net.to("cpu").eval()
    session = inference_session(onnx_path, threads=os.cpu_count() or 1)
    max_diff, mismatches = 0.0, 0
    for start in range(0, len(images), batch_size):
        batch = as_model_input(images[start : start + batch_size])
        with torch.no_grad():
            ref = net(torch.from_numpy(batch)).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        max_diff = max(max_diff, float(np.abs(ref - got).max()))
        mismatches += int((ref.argmax(1) != got.argmax(1)).sum())
    return Parity(n_images=len(images), max_abs_diff=max_diff, argmax_mismatches=mismatches)


def export_and_verify(
    net: torch.nn.Module,
    path: str | os.PathLike[str],
    images: np.ndarray,
    opset: int = 18,
    atol: float = 1e-4,
) -> Parity:
    """Export to ``path`` only if parity holds; otherwise raise and leave ``path`` untouched."""
    target = Path(path)
    staging = target.with_name(f".{target.stem}.staging.onnx")
    try:
        export_onnx(net, staging, opset)
        pause_here("onnx-staged")  # only fault-injection tests ask it to wait
        parity = check_parity(net, staging, images)
        if not parity.ok(atol):
            raise UserError(
                f"ONNX parity failed on {parity.n_images} images: "
                f"max |diff| {parity.max_abs_diff:.2e} "
                f"(allowed {atol:.0e}), {parity.argmax_mismatches} argmax mismatches; "
                "check the opset (export.opset) or the model for unsupported layers"
            )
        os.replace(staging, target)
        return parity
    finally:
        staging.unlink(missing_ok=True)
