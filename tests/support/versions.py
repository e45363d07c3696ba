"""Model files that stand for different registry versions of one model, for the follower
tests: a near-copy (other bytes and SHA-256, the same answers) that a smoke set labelled by
the original passes, and another seed's model that fails it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_mlops.inference.model_card import ModelCard, card_path


def write_variant(
    model_path: Path, folder: Path, seed: int | None = None, nudge: float = 0.0
) -> Path:
    """``folder/model.onnx`` + card: another seed's model (``seed``: other answers), or
    ``model_path``'s with every bias moved by ``nudge`` (other bytes, the same argmax on
    all but the closest calls)."""
    import onnx
    import torch

    from mnist_mlops.export.to_onnx import export_onnx
    from mnist_mlops.train.network import MLP

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    if seed is not None:
        torch.manual_seed(seed)
        export_onnx(MLP(hidden=(32,)), path)
    else:
        graph = onnx.load(str(model_path))
        for tensor in graph.graph.initializer:
            array = onnx.numpy_helper.to_array(tensor)
            if array.ndim == 1 and array.dtype == np.float32 and array.size > 1:
                tensor.CopyFrom(
                    onnx.numpy_helper.from_array(array + np.float32(nudge), tensor.name)
                )
        onnx.save(graph, str(path))
    card = ModelCard.read_beside(model_path)
    ModelCard.for_model(path, mean=card.mean, std=card.std).write_beside(path)
    assert card_path(path).is_file()
    return path


def smoke_set(model_path: Path, path: Path, n: int = 200, margin: float = 0.2) -> Path:
    """``path`` (.npz): images ``model_path`` answers with a clear margin, labelled with its
    answers (x uint8 (N, 28, 28), y int64), like the champion stage's MNIST test digits."""
    from mnist_mlops.inference.session import inference_session, softmax

    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(20 * n, 28, 28)).astype(np.uint8)
    x[:, :, :14] //= 4
    session = inference_session(model_path)
    (logits,) = session.run(["logits"], {"pixels": x.astype(np.float32)})
    top2 = np.sort(softmax(logits), axis=1)[:, -2:]
    clear = np.flatnonzero(top2[:, 1] - top2[:, 0] > margin)[:n]
    assert len(clear) == n, f"only {len(clear)} clear answers"
    np.savez(path, x=x[clear], y=logits[clear].argmax(axis=1).astype(np.int64))
    return path
