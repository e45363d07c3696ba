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
    ``model_path``'s with its output bias moved by ``nudge`` (other bytes; every logit moves
    alike, so the same answers)."""
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
            if array.shape == (10,) and array.dtype == np.float32:
                tensor.CopyFrom(
                    onnx.numpy_helper.from_array(array + np.float32(nudge), tensor.name)
                )
        onnx.save(graph, str(path))
    card = ModelCard.read_beside(model_path)
    ModelCard.for_model(path, mean=card.mean, std=card.std).write_beside(path)
    assert card_path(path).is_file()
    return path


def smoke_set(model_path: Path, path: Path, n: int = 200) -> Path:
    """``path`` (.npz): ``n`` images labelled with ``model_path``'s answers (x uint8
    (N, 28, 28), y int64), like the champion stage's MNIST test digits."""
    from mnist_mlops.inference.session import inference_session

    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)
    x[: n // 2, :, :14] //= 8  # half the images dark on one side: more varied answers
    (logits,) = inference_session(model_path).run(["logits"], {"pixels": x.astype(np.float32)})
    np.savez(path, x=x, y=logits.argmax(axis=1).astype(np.int64))
    return path


def version_files(model_path: Path, root: Path) -> dict[str, Path]:
    """Model files for a registry's versions: "a" the original, "b".."d" near-copies (other
    bytes and SHA-256, the same answers), "other" another seed's (other answers: fails a
    smoke set labelled by "a"), and "smoke", that smoke set."""
    files = {"a": model_path}
    for i, name in enumerate("bcd", start=1):
        files[name] = write_variant(model_path, root / name, nudge=1e-4 * i)
    files["other"] = write_variant(model_path, root / "other", seed=1)
    files["smoke"] = smoke_set(model_path, root / "smoke.npz")
    return files
