"""Why the 'writers' field set's misses are missed: preprocessing or the classifier?

    python -m bench.research.writers_misses models/model.onnx [--seed 7] [--out F.json]
    python -m bench.research.writers_misses models/model.onnx --quick --out /tmp/w.json  # runs?

Every writers digit is read four ways by the same ONNX model:

- ``served``: the bytes through :func:`mnist_mlops.imaging.preprocess_image` (what users get);
- ``no_stroke``: the same ink mask, but the stroke width left as found (no erode/dilate);
- ``clean``: the 8x8 cell itself, upscaled smoothly and thresholded at half its ink, then the
  same stroke/box/centre steps (no paper, blur, JPEG or ink finding);
- ``grey``: the 8x8 cell as MNIST itself was made: anti-aliased into 20x20, centred by mass,
  never binarised (an upper bound on what a preprocessing can hand over).

A served miss is put down to ink finding when ``clean`` reads it right, to the stroke
normalisation when ``no_stroke`` does, and to the classifier when neither does (and to
the source itself when even ``grey`` is wrong). Prints counts per cause and per true digit.
``--n`` reads only the first digits; ``--quick`` a few of them, to prove the script runs.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from PIL import ImageOps

from mnist_mlops.core.fileio import atomic_path, write_json
from mnist_mlops.evaluation.fieldscore import score_inputs
from mnist_mlops.evaluation.writers import load_writers, writers_set
from mnist_mlops.imaging import MIN_CONTRAST, WORK, decode_image, preprocess_image
from mnist_mlops.imaging.decode import shrink, to_channels
from mnist_mlops.imaging.ink import find_ink
from mnist_mlops.imaging.stroke import _crop, _to_work_size, centre_by_mass, fit_box

QUICK_N = 50  # digits: every way and every cause's code path, in seconds


def _field_no_stroke(ink: np.ndarray) -> np.ndarray:
    """mnist_field without the stroke-width step."""
    mask = _crop(_to_work_size(ink) >= 0.5)
    return centre_by_mass(fit_box(mask.astype(np.float32) * 255.0))


def no_stroke(blob: bytes) -> np.ndarray:
    image = to_channels(shrink(ImageOps.exif_transpose(decode_image(blob, draft=WORK))))
    mask = find_ink(np.asarray(image, np.float32), MIN_CONTRAST)
    return _field_no_stroke(_crop(mask).astype(np.float32))


def clean(cell: np.ndarray) -> np.ndarray:
    """The cell upscaled to 128 px (bicubic) and thresholded at half its ink, then served."""
    from mnist_mlops.imaging.stroke import mnist_field

    big = cv2.resize(cell / 16.0, (128, 128), interpolation=cv2.INTER_CUBIC)
    mask = big >= 0.5
    return mnist_field(_crop(mask).astype(np.float32))


def grey(cell: np.ndarray) -> np.ndarray:
    """The cell, cropped to its ink, anti-aliased into 20x20 and centred by mass."""
    big = cv2.resize(cell / 16.0 * 255.0, (128, 128), interpolation=cv2.INTER_CUBIC)
    big = np.clip(big, 0, 255)
    return centre_by_mass(fit_box(big[_box(big > 40)]))


def _box(mask: np.ndarray) -> tuple[slice, slice]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="")
    parser.add_argument("--n", type=int, help="only the first N digits (default: all)")
    parser.add_argument("--quick", action="store_true", help="seconds, to prove it runs")
    args = parser.parse_args()
    n = args.n or (QUICK_N if args.quick else None)
    cells, labels = load_writers()
    cells, labels = cells[:n], labels[:n]
    blobs, _ = writers_set(args.seed, n)
    ways = {
        "served": np.stack([preprocess_image(b) for b in blobs]),
        "no_stroke": np.stack([no_stroke(b) for b in blobs]),
        "clean": np.stack([clean(c) for c in cells]),
        "grey": np.stack([grey(c) for c in cells]),
    }
    preds = {k: score_inputs(args.onnx, v, labels).predictions for k, v in ways.items()}
    right = {k: p == labels for k, p in preds.items()}
    for k in ways:
        print(f"{k:10s} accuracy {right[k].mean():.4f}")
    miss = ~right["served"]
    cause = np.full(len(labels), "", dtype=object)
    cause[miss & right["clean"]] = "ink finding"
    cause[miss & ~right["clean"] & right["no_stroke"]] = "stroke width"
    cause[miss & ~right["clean"] & ~right["no_stroke"] & right["grey"]] = "binarised+stroke"
    cause[miss & ~right["clean"] & ~right["no_stroke"] & ~right["grey"]] = "classifier"
    counts = Counter(cause[miss])
    print(f"{int(miss.sum())} served misses:", dict(counts))
    per_digit = {
        int(d): {
            "misses": int((miss & (labels == d)).sum()),
            "read_as": dict(Counter(int(p) for p in preds["served"][miss & (labels == d)])),
            "causes": dict(Counter(cause[miss & (labels == d)])),
        }
        for d in range(10)
    }
    for d, row in per_digit.items():
        print(d, row)
    if args.out:
        write_json(args.out, {"accuracy": {k: float(r.mean()) for k, r in right.items()},
                              "causes": dict(counts), "per_digit": per_digit})  # fmt: skip
        with atomic_path(Path(args.out).with_suffix(".npz")) as tmp:
            np.savez_compressed(
                tmp, labels=labels, **{f"in_{k}": v for k, v in ways.items()},
                **{f"pred_{k}": p for k, p in preds.items()},
            )  # fmt: skip


if __name__ == "__main__":
    main()
