"""Analysis functions on predictions whose answers are worked out by hand."""

import numpy as np
import pytest

from mnist_mlops.evaluation import analysis
from mnist_mlops.train import curves


@pytest.fixture
def known():
    # 3 zeros (one called 6), 2 sevens (one called 1), four 1s right, 4->9 twice.
    y_true = np.array([0, 0, 0, 7, 7, 1, 1, 1, 1, 4, 4, 4])
    y_pred = np.array([0, 0, 6, 7, 1, 1, 1, 1, 1, 9, 9, 4])
    return y_true, y_pred


def test_confusion_counts(known):
    cm = analysis.confusion(*known)
    assert cm.shape == (10, 10) and cm.sum() == 12
    assert cm[0, 0] == 2 and cm[0, 6] == 1 and cm[7, 1] == 1 and cm[4, 9] == 2
    assert np.trace(cm) == 8


def test_per_class_precision_recall_f1(known):
    scores = analysis.per_class(*known)
    assert scores["1"]["precision"] == pytest.approx(4 / 5)  # the 7 called 1
    assert scores["1"]["recall"] == pytest.approx(1.0)
    assert scores["0"]["recall"] == pytest.approx(2 / 3)
    assert scores["4"]["f1"] == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))
    assert scores["9"]["precision"] == 0.0 and scores["9"]["support"] == 0
    assert scores["3"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_most_confused_orders_by_count(known):
    pairs = analysis.most_confused(analysis.confusion(*known), k=5)
    assert pairs[0] == {"true": 4, "predicted": 9, "count": 2}
    assert {(p["true"], p["predicted"]) for p in pairs[1:]} == {(0, 6), (7, 1)}
    assert len(pairs) == 3  # only pairs that actually occur


def test_summary_accuracy_and_loss():
    y = np.array([0, 1, 2, 3])
    probs = np.full((4, 10), 0.0)
    probs[np.arange(4), [0, 1, 2, 0]] = 1.0
    probs = 0.9 * probs + 0.01  # rows sum to 1
    s = analysis.summary(y, probs)
    assert s["accuracy"] == 0.75 and s["errors"] == 1
    assert s["loss"] == pytest.approx(-(3 * np.log(0.91) + np.log(0.01)) / 4)


@pytest.mark.parametrize(("dx", "dy"), [(2, 0), (-3, 0), (0, 4), (0, -1), (1, -2)])
def test_shift_images_moves_pixels_and_fills_zero(dx, dy):
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, 10, 12] = 200
    out = analysis.shift_images(img, dx, dy)
    assert out[0, 10 + dy, 12 + dx] == 200 and out.sum() == 200


def test_shift_off_the_edge_drops_ink():
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, 0, 27] = 255
    assert analysis.shift_images(img, 1, 0).sum() == 0


def _curve(val_acc, val_loss):
    # train/acc is deliberately low: it is measured with augmentation and dropout on.
    return [
        {"train/acc": v - 0.02, "val/acc": v, "val/loss": loss, "train/loss": 0.1}
        for v, loss in zip(val_acc, val_loss)
    ]


def test_diagnosis_reads_validation_curves_only():
    # A model whose augmented train accuracy trails validation is not "underfitting".
    done = _curve([0.97, 0.985, 0.9905, 0.991], [0.1, 0.05, 0.035, 0.034])
    assert curves.diagnose(done).startswith("converged")
    rising = _curve([0.97, 0.98, 0.975, 0.97], [0.1, 0.09, 0.12, 0.15])
    assert curves.diagnose(rising).startswith("overfitting")
    osc = _curve([0.975] * 6, [0.10, 0.12, 0.10, 0.12, 0.10, 0.115])
    assert curves.diagnose(osc).startswith("oscillating")
    short = _curve([0.95, 0.97], [0.2, 0.1])
    assert curves.diagnose(short).startswith("still improving")
    assert curves.diagnose([]) == "no history"
