"""One line on the learning curves, read from validation only.

Training accuracy is measured on augmented batches with dropout on, so it sits below the
validation accuracy of a well-fitted model and says nothing about under- or overfitting;
only the held-out curves are compared with themselves.
"""

from __future__ import annotations

STILL_IMPROVING = 0.002  # val accuracy gained over the last epoch that says "train longer"
OVERFIT_LOSS_RISE = 1.2  # final val loss this many times its best: the model is overfitting


def diagnose(history: list[dict[str, float]]) -> str:
    """Overfitting, oscillating, still improving, or converged, from ``val/*`` per epoch."""
    if not history:
        return "no history"
    losses = [h["val/loss"] for h in history]
    accs = [h["val/acc"] for h in history]
    best = min(losses)
    if len(losses) > 3 and losses[-1] > OVERFIT_LOSS_RISE * best:
        return (
            f"overfitting: val loss {losses[-1]:.4f} vs best {best:.4f} at epoch "
            f"{losses.index(best) + 1}; add regularisation or stop earlier"
        )
    ups = sum(b > a for a, b in zip(losses, losses[1:]))
    if len(losses) > 3 and ups >= len(losses) // 2:
        return f"oscillating: val loss rose in {ups} of {len(losses) - 1} epochs; lower the lr"
    if len(accs) > 1 and accs[-1] - accs[-2] > STILL_IMPROVING:
        return (
            f"still improving: val accuracy +{accs[-1] - accs[-2]:.4f} in the last epoch; "
            "more epochs may help"
        )
    return f"converged: val accuracy {accs[-1]:.4f}, val loss {losses[-1]:.4f}"
