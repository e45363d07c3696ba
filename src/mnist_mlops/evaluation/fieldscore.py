"""Score the field sets through exactly the serving path: bytes -> imaging -> ONNX.

The service decodes an upload with :func:`mnist_mlops.imaging.preprocess_image`
and runs the exported ONNX graph with ONNX Runtime; :mod:`mnist_mlops.evaluation.field_inputs`
preprocesses each image the same way and this runs the graph on what came out, so a
preprocessing or export bug shows up here as it would for users.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from mnist_mlops.inference.session import INPUT_NAME, as_model_input, inference_session


@dataclass(frozen=True)
class SetScore:
    """One field set's predictions (-1 where preprocessing refused the image)."""

    labels: np.ndarray
    predictions: np.ndarray
    inputs: np.ndarray  # (N, 28, 28) what the model saw (zeros where refused)

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean())

    @property
    def refused(self) -> int:
        return int((self.predictions < 0).sum())


def score_inputs(
    onnx_path: str | os.PathLike[str],
    inputs: np.ndarray,
    labels: np.ndarray,
    ok: np.ndarray | None = None,
) -> SetScore:
    """Model inputs (N, 28, 28), 0..255, as the service hands them over -> one ONNX batch;
    ``ok`` False marks images the preprocessing refused (scored as misses)."""
    ok = np.ones(len(labels), dtype=bool) if ok is None else ok
    predictions = np.full(len(labels), -1, dtype=np.int64)
    if len(labels):
        session = inference_session(onnx_path)
        logits = session.run(None, {INPUT_NAME: as_model_input(inputs)})[0]
        predictions = np.where(ok, logits.argmax(1), -1)
    return SetScore(np.asarray(labels), predictions, np.asarray(inputs, dtype=np.float32))


def rescore(onnx_path: str | os.PathLike[str], score: SetScore) -> SetScore:
    """Another model on exactly the inputs ``score`` was measured on (refusals kept)."""
    return score_inputs(onnx_path, score.inputs, score.labels, score.predictions >= 0)


def sets_fingerprint(scores: dict[str, SetScore], *arrays: np.ndarray) -> str:
    """SHA-256 of what the models are compared on: each set's name, labels, refusals and
    model inputs, and ``arrays`` (the test split). Equal fingerprints, equal images."""
    digest = hashlib.sha256()
    for name in sorted(scores):
        score = scores[name]
        digest.update(name.encode())
        for part in (score.labels.astype(np.int64), score.predictions >= 0, score.inputs):
            digest.update(np.ascontiguousarray(part).tobytes())
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def plot_failures(
    blobs: list[bytes], score: SetScore, title: str, path: str | os.PathLike[str], n: int = 12
) -> None:
    """Each miss as the image sent beside what the model saw, titled 'true -> predicted'."""
    import io

    from PIL import Image, ImageOps

    from mnist_mlops.core.fileio import atomic_path
    from mnist_mlops.evaluation.analysis import headless_pyplot

    plt = headless_pyplot()
    wrong = np.flatnonzero(score.predictions != score.labels)[:n]
    cols = 4  # two misses per row: (sent, seen) x 2
    rows = max(1, int(np.ceil(len(wrong) / 2)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.7), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, i in enumerate(wrong):
        sent, seen = axes[k // 2, (k % 2) * 2], axes[k // 2, (k % 2) * 2 + 1]
        with Image.open(io.BytesIO(blobs[i])) as img:
            thumb = ImageOps.exif_transpose(img).convert("RGBA")
            thumb.thumbnail((128, 128))
        sent.imshow(np.asarray(thumb))
        pred = "refused" if score.predictions[i] < 0 else str(score.predictions[i])
        sent.set_title(f"{score.labels[i]} -> {pred}", fontsize=9)
        seen.imshow(score.inputs[i], cmap="gray", vmin=0, vmax=255)
        seen.set_title("model input", fontsize=7)
    misses = int((score.predictions != score.labels).sum())
    fig.suptitle(f"{title}: {misses} of {len(score.labels)} wrong (first {len(wrong)})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
