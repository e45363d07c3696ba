"""The evaluate stage's work: test-set predictions and everything derived from them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from mnist_mlops.core.fileio import write_csv, write_json
from mnist_mlops.evaluation import analysis

SHIFTS = (0, 1, 2, 3, 4)
_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))


@torch.no_grad()
def predict_proba(net: torch.nn.Module, images: np.ndarray, batch_size: int = 10_000) -> np.ndarray:
    """Softmax probabilities (N, 10) for uint8 images (N, 28, 28), on CPU."""
    net = net.to("cpu").eval()
    out = [
        torch.softmax(net(torch.from_numpy(images[i : i + batch_size])).double(), dim=1).numpy()
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out)


def shift_accuracy(
    net: torch.nn.Module, images: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """Accuracy when every test image is moved d pixels (mean over left/right/up/down)."""
    result = {}
    for d in SHIFTS:
        dirs = [(0, 0)] if d == 0 else [(d * dx, d * dy) for dx, dy in _DIRECTIONS]
        accs = [
            float(
                (
                    predict_proba(net, analysis.shift_images(images, dx, dy)).argmax(1) == labels
                ).mean()
            )
            for dx, dy in dirs
        ]
        result[str(d)] = float(np.mean(accs))
    return result


def evaluate(
    net: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    metrics_dir: str | os.PathLike[str],
    plots_dir: str | os.PathLike[str],
) -> dict:
    """Compute and write every evaluation output; return the metrics written."""
    metrics_dir, plots_dir = Path(metrics_dir), Path(plots_dir)
    probs = predict_proba(net, images)
    preds = probs.argmax(1)
    s = analysis.summary(labels, probs)
    shifts = shift_accuracy(net, images, labels)
    metrics = {
        "test": {
            "accuracy": s["accuracy"],
            "loss": s["loss"],
            "macro_f1": s["macro_f1"],
            "errors": s["errors"],
            "n": s["n"],
        },
        "shift_accuracy": shifts,
        "most_confused": s["most_confused"],
    }
    write_json(metrics_dir / "evaluate.json", metrics)
    write_json(metrics_dir / "per_class.json", s["per_class"])
    write_json(
        metrics_dir / "confusion_matrix.json",
        {"labels": analysis.CLASSES, "rows_true_cols_predicted": s["confusion_matrix"]},
    )
    write_csv(
        plots_dir / "confusion.csv",
        ["actual", "predicted"],
        [{"actual": int(t), "predicted": int(p)} for t, p in zip(labels, preds)],
    )
    write_csv(
        plots_dir / "shift_robustness.csv",
        ["shift_px", "accuracy"],
        [{"shift_px": int(d), "accuracy": a} for d, a in shifts.items()],
    )
    analysis.plot_confusion(np.asarray(s["confusion_matrix"]), plots_dir / "confusion_matrix.png")
    analysis.plot_misclassified(images, labels, preds, plots_dir / "misclassified.png")
    analysis.plot_lines(
        [int(d) for d in shifts],
        {"test accuracy": list(shifts.values())},
        "shift (pixels)",
        "accuracy",
        "Shift robustness",
        plots_dir / "shift_robustness.png",
    )
    return metrics
