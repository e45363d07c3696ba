"""What the predictions say: confusion matrix, per-class metrics, confused pairs, plots.

Pure functions of (labels, predictions, probabilities) so they can be tested on
answers worked out by hand; plotting is kept apart and uses matplotlib's
non-interactive backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import numpy as np
from sklearn.metrics import confusion_matrix, log_loss, precision_recall_fscore_support

from mnist_mlops.core.fileio import atomic_path

CLASSES = list(range(10))


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """10x10 counts: rows are true digits, columns predicted."""
    return confusion_matrix(y_true, y_pred, labels=CLASSES)


def per_class(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each digit."""
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=CLASSES, zero_division=0)
    return {
        str(c): {
            "precision": float(p[c]),
            "recall": float(r[c]),
            "f1": float(f[c]),
            "support": int(s[c]),
        }
        for c in CLASSES
    }


def most_confused(cm: np.ndarray, k: int = 5) -> list[dict[str, int]]:
    """The ``k`` largest off-diagonal cells as (true, predicted, count), largest first."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:k]
    pairs = [np.unravel_index(i, off.shape) for i in order]
    return [
        {"true": int(t), "predicted": int(p), "count": int(off[t, p])}
        for t, p in pairs
        if off[t, p] > 0
    ]


def summary(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, loss, macro F1, per-class metrics and the top confusions."""
    y_pred = probs.argmax(1)
    cm = confusion(y_true, y_pred)
    classes = per_class(y_true, y_pred)
    return {
        "accuracy": float((y_pred == y_true).mean()),
        "loss": float(log_loss(y_true, np.clip(probs, 1e-12, 1.0), labels=CLASSES)),
        "macro_f1": float(np.mean([c["f1"] for c in classes.values()])),
        "n": int(len(y_true)),
        "errors": int((y_pred != y_true).sum()),
        "per_class": classes,
        "most_confused": most_confused(cm),
        "confusion_matrix": cm.tolist(),
    }


def shift_images(images: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Shift (N, 28, 28) images by (dx, dy) pixels, filling with background (0)."""
    out = np.zeros_like(images)
    h, w = images.shape[1:]
    src_y = slice(max(0, -dy), min(h, h - dy))
    dst_y = slice(max(0, dy), min(h, h + dy))
    src_x = slice(max(0, -dx), min(w, w - dx))
    dst_x = slice(max(0, dx), min(w, w + dx))
    out[:, dst_y, dst_x] = images[:, src_y, src_x]
    return out


def headless_pyplot() -> ModuleType:
    """matplotlib's pyplot on the Agg backend: plots go to files, never to a display (a
    stage or a test on a machine without one must not fail or open windows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Confusion matrix heat map with counts."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = headless_pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    ConfusionMatrixDisplay(cm, display_labels=CLASSES).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format="d"
    )
    ax.set_title("MNIST test confusion matrix")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_misclassified(
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    path: str | os.PathLike[str],
    n: int = 36,
) -> None:
    """A grid of misclassified test images titled 'true -> predicted'."""
    plt = headless_pyplot()
    wrong = np.flatnonzero(y_pred != y_true)[:n]
    cols = 6
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.6))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, i in zip(np.atleast_1d(axes).ravel(), wrong):
        ax.imshow(images[i], cmap="gray_r")
        ax.set_title(f"{y_true[i]} -> {y_pred[i]}", fontsize=9)
    fig.suptitle(f"misclassified: {int((y_pred != y_true).sum())} (first {len(wrong)})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_lines(
    xs: list[float],
    series: dict[str, list[float]],
    xlabel: str,
    ylabel: str,
    title: str,
    path: str | os.PathLike[str],
) -> None:
    """A small line chart (shift robustness, learning curves)."""
    plt = headless_pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in series.items():
        ax.plot(xs, ys, marker="o", label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
