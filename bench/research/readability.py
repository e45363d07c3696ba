"""How many of a field set's misses a person reads right: the set's ceiling, from a person's calls.

    python -m bench.research.readability marker [--onnx models/model.onnx] \
        [--seeds 7 11 13] [--calls bench/results/readability_marker.json]
    python -m bench.research.readability marker --quick --out /tmp/readability  # runs?

Scores the set's draws (by default the field stage's, from params.yaml's ``field``, and
the two later ones bench/research/field_ideas.py reads) through the serving path, then takes
each miss to the person's call in ``--calls`` (one per image, judged from the upload:
``readable``, a person reads the true digit at once; ``ambiguous``, a person could read it
either way; ``unreadable``, a person reads another digit or none). A call holds a
fingerprint of what the model saw, so it is never applied to another image; a miss without
a call is ``unjudged``, drawn, and no ceiling is quoted for its draw until it has one.
Writes a grid of the misses (the upload beside what the model saw, the call under each) and
a JSON summary: per draw, the misses by call, and the ceiling: the accuracy of a reader who
gets every image right but those called unreadable (every call of the draw, whichever model
missed the image; an upper bound: a person may also misread images no model has missed).
``--quick``: a few images on one draw, to prove the script runs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.research.field_ideas import LATER_SEEDS, QUICK_N
from mnist_mlops.core.config import FieldConfig, load_params
from mnist_mlops.core.fileio import atomic_path, read_json, write_json
from mnist_mlops.data.splits import load_splits
from mnist_mlops.evaluation.field_inputs import build_set_inputs
from mnist_mlops.evaluation.fieldscore import score_inputs

TILE = 160  # px of each half of a grid tile
CALLS = ("readable", "ambiguous", "unreadable")


def input_sha(x: np.ndarray) -> str:
    """A short fingerprint of what the model saw, so a call is never applied to another image."""
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()[:12]


def tile(blob: bytes, x: np.ndarray, caption: str) -> Image.Image:
    raw = Image.open(io.BytesIO(blob)).convert("L")
    raw.thumbnail((TILE, TILE))
    seen = Image.fromarray(x.clip(0, 255).astype(np.uint8)).resize((TILE, TILE), Image.NEAREST)
    out = Image.new("L", (2 * TILE, TILE + 16), 255)
    out.paste(raw, (0, 0))
    out.paste(seen, (TILE, 0))
    ImageDraw.Draw(out).text((2, TILE + 2), caption, fill=0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set")
    parser.add_argument("--onnx", default="models/model.onnx")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: field.seed, then "
                        + ", ".join(map(str, LATER_SEEDS)))  # fmt: skip
    parser.add_argument("--n", type=int, help="images per draw (default: field.n_per_set)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--processed", default="data/processed")
    parser.add_argument("--calls", help="default: bench/results/readability_SET.json")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--quick", action="store_true", help="seconds, to prove it runs")
    args = parser.parse_args()
    field = FieldConfig.from_params(load_params(args.params))
    later = [] if args.quick else list(LATER_SEEDS)
    args.seeds = args.seeds or [field.seed, *later]
    args.n = args.n or (QUICK_N if args.quick else field.n_per_set)
    calls_path = Path(args.calls or f"{args.out}/readability_{args.set}.json")
    calls = {(c["seed"], c["index"]): c for c in read_json(calls_path)["calls"]} \
        if calls_path.exists() else {}  # fmt: skip
    splits, _ = load_splits(args.processed)
    tiles, summary = [], {"set": args.set, "onnx": args.onnx, "n": args.n, "seeds": {}}
    for seed in args.seeds:
        s = build_set_inputs(args.set, splits.x_test, splits.y_test, args.n, seed)
        score = score_inputs(args.onnx, s.inputs, s.labels, s.ok)
        pred = score.predictions
        # The calls of this draw that still judge what the model sees (same fingerprint).
        fresh = {i: c for (sd, i), c in calls.items()
                 if sd == seed and c["sha"] == input_sha(s.inputs[i])}  # fmt: skip
        counts = dict.fromkeys(CALLS + ("unjudged",), 0)
        for i in np.flatnonzero(pred != s.labels):
            call = fresh.get(int(i))
            verdict = call["call"] if call and call["call"] in CALLS else "unjudged"
            counts[verdict] += 1
            note = f" {call['note']}" if call and call.get("note") else ""
            caption = f"s{seed}#{i} {s.labels[i]}->{pred[i]} {verdict}{note}"
            tiles.append(tile(s.blobs[i], s.inputs[i], caption[:52]))
            if verdict == "unjudged":
                print(f"unjudged: seed {seed} index {i} digit {s.labels[i]} read {pred[i]} "
                      f"sha {input_sha(s.inputs[i])}")  # fmt: skip
        unreadable = sum(c["call"] == "unreadable" for c in fresh.values())
        ceiling = None if counts["unjudged"] else round(1.0 - unreadable / args.n, 4)
        summary["seeds"][str(seed)] = {"accuracy": round(score.accuracy, 4), **counts,
                                       "ceiling": ceiling}  # fmt: skip
    cols = 4
    grid = Image.new("L", (cols * 2 * TILE, -(-len(tiles) // cols) * (TILE + 16)), 200)
    for k, t in enumerate(tiles):
        grid.paste(t, ((k % cols) * 2 * TILE, (k // cols) * (TILE + 16)))
    with atomic_path(Path(args.out) / f"readability_{args.set}.png") as tmp:
        grid.save(tmp, format="PNG")
    write_json(Path(args.out) / f"readability_{args.set}_summary.json", summary)
    for seed, row in summary["seeds"].items():
        print(f"seed {seed}: {row}")


if __name__ == "__main__":
    main()
