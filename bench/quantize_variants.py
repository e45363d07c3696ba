"""Which int8 model to make: every ONNX Runtime quantization variant against the float model.

    PYTHONPATH=src python bench/quantize_variants.py                    # models/model.onnx
    PYTHONPATH=src python bench/quantize_variants.py --field  # and the field sets
    PYTHONPATH=src python bench/quantize_variants.py MODEL PROCESSED_DIR --field-inputs \
        data/field_inputs.npz --out /tmp/q.json
    PYTHONPATH=src python bench/quantize_variants.py --quick --out /tmp/q.json  # runs?

Each variant (``export.quantize``'s method, preprocess and optimize; see
src/mnist_mlops/export/quantize.py) is made twice from the same float model and training
images: the two files' SHA-256 must agree (a variant that is not deterministic is marked).
Then, on the MNIST test split: agreement with the float model's digit, the largest
probability difference, both accuracies; with ``--field-inputs`` (the field stage's
data/field_inputs.npz) or ``--field`` (the sets built here as params.yaml's ``field`` says)
each field set's accuracy too. Then speed, ONNX Runtime directly,
one intra-op thread, the process pinned to one core: the median time of one image and of
a batch of 256 (per image), float and every variant timed in turns within each round so
that a neighbour's load hits them alike; the ratios to float are what to compare across
machines. Prints a table, writes JSON (bench/results/quantize_variants.json by default).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from common import REPO, machine  # bench/ is sys.path[0]

from mnist_mlops.core.config import FieldConfig, QuantizeConfig, load_params
from mnist_mlops.data.splits import load_splits
from mnist_mlops.evaluation.field_inputs import build_field_inputs, load_field_inputs
from mnist_mlops.export.quantize import METHODS, int8_parity, quantize_onnx
from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME, inference_session

# name -> (method, preprocess, optimize): every combination the export stage can make.
VARIANTS = {
    f"{method}{'+pre' if pre else ''}{'+opt' if opt else ''}": (method, pre, opt)
    for method in METHODS
    for pre in (False, True)
    for opt in (False, True)
}
BATCH = 256


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_variants(
    model: Path, x_train: np.ndarray, folder: Path, calibration_n: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Each variant made twice: its file, size, SHA-256 and whether the rerun matched."""
    made: dict[str, dict[str, Any]] = {}
    for name, (method, pre, opt) in VARIANTS.items():
        cfg = QuantizeConfig(
            method=method, preprocess=pre, optimize=opt, calibration_n=calibration_n, seed=seed
        )
        path, again = folder / f"{name}.onnx", folder / f"{name}.again.onnx"
        start = time.perf_counter()
        quantize_onnx(model, path, cfg, x_train)
        seconds = time.perf_counter() - start
        quantize_onnx(model, again, cfg, x_train)
        made[name] = {
            "cfg": cfg.model_dump(),
            "path": path,
            "bytes": path.stat().st_size,
            "sha256": sha256(path),
            "deterministic": sha256(path) == sha256(again),
            # Operators outside the ONNX standard (ORT's contrib ops): runs on ORT only.
            "contrib_ops": sorted(
                {
                    n.op_type
                    for n in onnx.load(str(path)).graph.node
                    if n.domain not in ("", "ai.onnx")
                }
            ),
            "quantize_s": round(seconds, 3),
        }
    return made


def field_accuracy(model: Path, sets: dict[str, Any]) -> dict[str, float]:
    """Each field set's accuracy (refused images count as misses, as the field stage scores)."""
    session = inference_session(model, threads=os.cpu_count() or 1)
    out = {}
    for name, s in sets.items():
        logits = session.run([OUTPUT_NAME], {INPUT_NAME: s.inputs.astype(np.float32)})[0]
        out[name] = float(np.mean(np.where(s.ok, logits.argmax(1), -1) == s.labels))
    return out


def time_models(
    models: dict[str, Path], images: np.ndarray, rounds: int, calls: int
) -> dict[str, dict[str, float]]:
    """Median µs per image, one image and a batch of 256, one thread on one core; load ms."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    one, batch = images[:1], images[:BATCH]
    sessions, load_ms = {}, {}
    for name, path in models.items():
        start = time.perf_counter()
        sessions[name] = inference_session(path, threads=1)
        load_ms[name] = (time.perf_counter() - start) * 1e3
    samples: dict[str, dict[str, list[float]]] = {n: {"one": [], "batch": []} for n in models}
    for _ in range(rounds):
        for name, session in sessions.items():
            for key, x, n in (("one", one, calls), ("batch", batch, max(1, calls // 64))):
                session.run([OUTPUT_NAME], {INPUT_NAME: x})  # warm
                start = time.perf_counter()
                for _ in range(n):
                    session.run([OUTPUT_NAME], {INPUT_NAME: x})
                samples[name][key].append((time.perf_counter() - start) / (n * len(x)) * 1e6)
    return {
        name: {
            "one_image_us": round(statistics.median(s["one"]), 2),
            "batch_per_image_us": round(statistics.median(s["batch"]), 2),
            "load_ms": round(load_ms[name], 1),
        }
        for name, s in samples.items()
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    splits, _ = load_splits(args.processed_dir)
    x_test, y_test = splits.x_test, splits.y_test
    sets = {}
    if args.field_inputs:
        sets = load_field_inputs(args.field_inputs)
    elif args.field:  # the field stage's sets, built as it builds them (params.yaml's field)
        cfg = FieldConfig.from_params(load_params(REPO / "params.yaml"))
        sets = build_field_inputs(cfg.sets, splits.x_test, splits.y_test, cfg.n_per_set, cfg.seed)
    if args.quick:
        x_test, y_test = x_test[:500], y_test[:500]
    with tempfile.TemporaryDirectory(prefix="quantize-variants-") as tmp:
        made = make_variants(args.model, splits.x_train, Path(tmp), args.calibration_n, args.seed)
        paths = {"float": args.model, **{n: m.pop("path") for n, m in made.items()}}
        speed = time_models(paths, splits.x_test.astype(np.float32), args.rounds, args.calls)
        fields = {n: field_accuracy(p, sets) for n, p in paths.items()} if sets else {}
        rows = {"float": {"bytes": args.model.stat().st_size, "sha256": sha256(args.model)}}
        for name, info in made.items():
            parity = int8_parity(args.model, paths[name], x_test, y_test)
            rows[name] = {**info, **parity.__dict__}
    base = speed["float"]
    for name, row in rows.items():
        row.update(speed[name], field=fields.get(name, {}))
        row["one_image_ratio"] = round(row["one_image_us"] / base["one_image_us"], 3)
        row["batch_ratio"] = round(row["batch_per_image_us"] / base["batch_per_image_us"], 3)
    return {
        "model": str(args.model),
        "n_test": int(len(x_test)),
        "calibration_n": args.calibration_n,
        "seed": args.seed,
        "rounds": args.rounds,
        "calls": args.calls,
        "quick": args.quick,
        "onnxruntime": ort.__version__,
        "machine": machine(),
        "variants": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    head = f"{'variant':18} {'agree':>7} {'maxdp':>7} {'acc':>7} {'1 img':>8} {'x':>6}"
    head += f" {'b256/img':>9} {'x':>6} {'load ms':>8} {'det':>4}"
    fields = sorted({k for r in result["variants"].values() for k in r.get("field", {})})
    print(head + "".join(f" {f[:7]:>7}" for f in fields))
    for name, r in result["variants"].items():
        line = (
            f"{name:18} {r.get('agreement', 1.0):7.4f} {r.get('max_prob_diff', 0.0):7.4f} "
            f"{r.get('test_accuracy', r.get('float_test_accuracy', float('nan'))):7.4f} "
            f"{r['one_image_us']:8.1f} {r['one_image_ratio']:6.3f} "
            f"{r['batch_per_image_us']:9.2f} {r['batch_ratio']:6.3f} {r['load_ms']:8.1f} "
            f"{'yes' if r.get('deterministic', True) else 'NO':>4}"
        )
        print(line + "".join(f" {r['field'][f]:7.4f}" for f in fields))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, default=REPO / "models" / "model.onnx")
    parser.add_argument("processed_dir", nargs="?", type=Path, default=REPO / "data/processed")
    parser.add_argument("--field-inputs", type=Path, help="the field stage's field_inputs.npz")
    parser.add_argument("--field", action="store_true", help="build the field sets instead")
    parser.add_argument("--calibration-n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=640, help="one-image calls per round")
    parser.add_argument("--quick", action="store_true", help="500 test images, 2 short rounds")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "quantize_variants.json"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls, args.calibration_n = 2, 64, min(args.calibration_n, 100)
    result = run(args)
    # The float model's row has no parity with itself: its accuracy is every row's baseline.
    result["variants"]["float"]["float_test_accuracy"] = next(
        r["float_test_accuracy"] for n, r in result["variants"].items() if n != "float"
    )
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
