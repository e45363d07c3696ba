"""Bulk scoring speed and memory: ``python -m pipeline.score`` against its limits, in one run.

    python bench/bulk_score.py --model models/model.onnx
    python bench/bulk_score.py --model m.onnx --sizes 10000 --image-sizes 1000
    python bench/bulk_score.py --model m.onnx --quick --out /tmp/x.json  # proves it runs
    # models of one export in one run, each row run on each (its "model" field), and
    # "model_ratios": each later model's images/s over the first's, per row
    python bench/bulk_score.py --sizes 200000 --image-sizes 10000 --ray-sizes "" \
        --ray-image-sizes "" --models float32=models/model.onnx int8=models/model.int8.onnx

Each command is timed whole, from its start (interpreter, imports) twice: until its
output file is in place (renamed, so complete), and until it exits, after recording its
MLflow run (importing MLflow alone is seconds of fixed cost). References, measured here
in the same run on the same model:
- arrays: ONNX Runtime called directly (default session, all cores) in a plain loop over
  the same uint8 array in memory, 8,192 images a ``session.run``, float32 conversion
  included, file reading and writing excluded.
- image folders: cores x one core's preprocessing rate, sustained for 3 s just before the
  command, on the images the folders are made of: 200x200 PNG drawings like
  bench/preprocess_speed.py's (a "7" at varying places and stroke widths). That script's
  median-of-calls rate of its own drawing is reported beside it.
At the issue's 200,000 arrays the command also runs with ``--no-track``, which shows
what recording the MLflow run (importing MLflow, writing to sqlite) costs.
Peak RSS: the command's own process (the kernel's high-water mark, VmHWM, read every
50 ms until it exits), and its whole process tree (current RSS summed, sampled every
50 ms, pool workers and Ray's processes included). Prints a table and writes JSON
(bench/results/bulk_score.json by default).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import psutil
from models_compare import over_first, parse_models  # bench/ is sys.path[0]
from PIL import Image, ImageDraw
from preprocess_speed import drawing_png, median_ms

from mnist_mlops import imaging
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME
from mnist_mlops.tracking.runs import prepare_store

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 8192
# One small command of each local kind (arrays, an image folder), no Ray.
QUICK = {"sizes": "1000", "image_sizes": "100", "ray_sizes": "", "ray_image_sizes": "",
         "sustain_s": 0.5}  # fmt: skip


def direct_rate(model: Path, array: np.ndarray) -> float:
    """Images/s of a plain session.run loop over ``array`` (the issue's reference)."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    session.run([OUTPUT_NAME], {INPUT_NAME: array[:CHUNK].astype(np.float32)})  # warm-up
    start = time.perf_counter()
    for i in range(0, len(array), CHUNK):
        session.run([OUTPUT_NAME], {INPUT_NAME: array[i : i + CHUNK].astype(np.float32)})
    return len(array) / (time.perf_counter() - start)


def sustained_rate(pngs: list[bytes], seconds: float) -> float:
    """One core's preprocessing rate on these images, sustained over ``seconds``.

    Not a median of single calls: on a shared machine a median sees the idle moments,
    while the command, running for minutes, gets the average share of a core. Pinned to
    one CPU: OpenCV otherwise spreads one call over every core (on 2 cores one process
    then preprocessed 685 images/s for 1.99 CPU-seconds a second, 611 pinned), and
    "cores x one core" would count the cores twice.
    """
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        imaging.preprocess_image(pngs[0])  # warm-up on the pinned core
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            imaging.preprocess_image(pngs[n % len(pngs)])
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        os.sched_setaffinity(0, allowed)


def digit_pngs(n_distinct: int = 500) -> list[bytes]:
    """200x200 PNG drawings like bench/preprocess_speed.py's, varied in place and stroke."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n_distinct):
        x, y = rng.integers(20, 70, size=2)
        img = Image.new("L", (200, 200), 0)
        points = [(x, y), (x + 100, y), (x + 40, y + 130)]
        ImageDraw.Draw(img).line(points, fill=255, width=int(rng.integers(8, 18)))
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def image_folder(folder: Path, n: int, pngs: list[bytes]) -> Path:
    """``n`` PNG files, 1,000 to a subfolder."""
    for i in range(n):
        path = folder / f"{i // 1000:04d}" / f"{i:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pngs[i % len(pngs)])
    return folder


def high_water_mark(pid: int) -> int:
    """Peak resident bytes of ``pid`` so far (the kernel's VmHWM: exact, between samples too)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_command(args: list[str], cwd: Path) -> dict:
    """Run the scoring command: seconds until its output is in place, until it exits, and
    peak RSS of it and of its process tree."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    output = cwd / args[2]
    output.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.score", *args, "--params", str(ROOT / "params.yaml")],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = {"tree": 0, "main": 0, "output": 0.0}
    done = threading.Event()

    def sample() -> None:
        parent = psutil.Process(proc.pid)
        tick = 0
        while not done.is_set():
            if not seen["output"] and output.exists():  # renamed into place: complete
                seen["output"] = time.perf_counter() - start
            if tick % 5 == 0:
                try:
                    tree = [parent, *parent.children(recursive=True)]
                    seen["tree"] = max(seen["tree"], sum(p.memory_info().rss for p in tree))
                    seen["main"] = max(seen["main"], high_water_mark(proc.pid))
                except (psutil.Error, OSError):
                    pass
            tick += 1
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    status = proc.wait()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    if status != 0:
        raise SystemExit(f"pipeline.score {args} failed:\n{err[-3000:]}")
    return {
        "seconds_to_output": round(seen["output"] or seconds, 2),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(seen["main"] / 2**20, 1),
        "peak_tree_rss_mb": round(seen["tree"] / 2**20, 1),
        "summary": out.strip().splitlines()[-1],
    }


def model_ratios(rows: list[dict], models: list[str]) -> dict[str, list[dict]]:
    """{"int8/float32": [{"case", "n", "images_per_s", "images_per_s_to_output",
    "reference_per_s"}]}: per case and size, each later model's rates over the first's."""
    out: dict[str, list[dict]] = {}
    cases = dict.fromkeys((r["case"], r["n"]) for r in rows)
    for case, n in cases:
        by_model = {r["model"]: r for r in rows if (r["case"], r["n"]) == (case, n)}
        if not models or models[0] not in by_model:
            continue
        keys = ("images_per_s", "images_per_s_to_output", "reference_per_s")
        per_key = {
            k: over_first({m: by_model[m][k] for m in models if m in by_model}) for k in keys
        }
        for pair in per_key["images_per_s"]:
            out.setdefault(pair, []).append(
                {"case": case, "n": n, **{k: round(per_key[k][pair], 3) for k in keys}}
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/model.onnx")
    parser.add_argument("--models", nargs="+", default=[], metavar="NAME=PATH",
                        help="run every row on each model (instead of --model)")  # fmt: skip
    parser.add_argument("--sizes", default="10000,100000,200000,1000000", help="array inputs")
    parser.add_argument("--image-sizes", default="10000,100000", help="image-folder inputs")
    parser.add_argument("--ray-sizes", default="200000", help="array inputs on --engine ray")
    parser.add_argument("--ray-image-sizes", default="10000")
    parser.add_argument("--criterion-size", type=int, default=200_000)
    parser.add_argument("--out", default="bench/results/bulk_score.json")
    parser.add_argument(
        "--sustain-s", type=float, default=3.0, help="seconds of the 1-core preprocess reference"
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK}: proves it runs")
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    precision = ModelCard.read_beside(args.model).precision if not args.models else ""
    models = parse_models(args.models or [f"{precision}={args.model}"])
    first = next(iter(models))
    sizes = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    cores = len(os.sched_getaffinity(0))
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    prepare_store(f"sqlite:///{work}/mlflow.db", "mnist-scoring")  # as after a first run
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(10_000, 28, 28), dtype=np.uint8)

    def add(case: str, n: int, result: dict, reference: float, ref_name: str, model: str) -> None:
        rate, to_output = n / result["seconds"], n / result["seconds_to_output"]
        rows.append({"case": case, "model": model, "n": n, **result, "images_per_s": round(rate),
                     "images_per_s_to_output": round(to_output),
                     "reference": ref_name, "reference_per_s": round(reference),
                     "ratio": round(rate / reference, 3),
                     "ratio_to_output": round(to_output / reference, 3)})  # fmt: skip
        print(f"{case:27s} {model:8s} {n:>9,} {result['seconds_to_output']:7.1f} "
              f"{result['seconds']:7.1f} "
              f"{to_output:9,.0f} {rate:9,.0f} {to_output / reference:6.1%} {rate / reference:6.1%}"
              f" {ref_name} {reference:,.0f}/s  RSS {result['peak_rss_mb']:.0f} MB "
              f"(tree {result['peak_tree_rss_mb']:.0f})", flush=True)  # fmt: skip

    print(f"{'case':27s} {'model':8s} {'n':>9s} {'s->out':>7s} {'s->exit':>7s} {'/s->out':>9s} "
          f"{'/s->exit':>9s} {'%->out':>6s} {'%->exit':>6s} reference")  # fmt: skip

    for n in sorted(set(sizes(args.sizes)) | set(sizes(args.ray_sizes))):
        array = np.concatenate([base] * (-(-n // len(base))))[:n]
        np.save(work / "in.npy", array)
        for label, model in models.items():  # each model on the same file, one after another
            direct = direct_rate(model, array)
            if n in sizes(args.sizes):
                result = run_command([str(model), "in.npy", "out.parquet"], work)
                add("local, .npy", n, result, direct, "direct ORT", label)
            if n in sizes(args.sizes) and n == args.criterion_size and label == first:
                # what the MLflow run costs, at the size (on the first model)
                result = run_command([str(model), "in.npy", "out.parquet", "--no-track"], work)
                add("local, .npy, --no-track", n, result, direct, "direct ORT", label)
            if n in sizes(args.ray_sizes):
                result = run_command([str(model), "in.npy", "ray.parquet", "--engine", "ray"], work)
                add("ray (local 1-node), .npy", n, result, direct, "direct ORT", label)
        del array
        (work / "in.npy").unlink()

    png = drawing_png()
    one_core_median = 1000 / median_ms(lambda: imaging.preprocess_image(png), 50)
    pngs = digit_pngs()
    for n in sorted(set(sizes(args.image_sizes)) | set(sizes(args.ray_image_sizes))):
        folder = image_folder(work / f"images-{n}", n, pngs)
        one_core = sustained_rate(pngs, args.sustain_s)
        ideal = cores * one_core
        for label, model in models.items():
            if n in sizes(args.image_sizes):
                result = run_command([str(model), str(folder), "o.parquet"], work)
                add("local, image folder", n, result, ideal, f"{cores} x 1-core preprocess", label)
            if n in sizes(args.ray_image_sizes):
                result = run_command(
                    [str(model), str(folder), "r.parquet", "--engine", "ray"], work
                )
                add("ray (local 1-node), images", n, result, ideal, f"{cores} x 1-core preprocess",
                    label)  # fmt: skip

    by_model = model_ratios(rows, list(models))
    for pair, cells in by_model.items():
        for r in cells:
            print(f"{pair}, {r['case']} {r['n']:,}: {r['images_per_s']:.2f}x to exit, "
                  f"{r['images_per_s_to_output']:.2f}x to output, "
                  f"direct ORT {r['reference_per_s']:.2f}x")  # fmt: skip
    result = {
        "rows": rows,
        "one_core_preprocess_per_s": round(one_core) if sizes(args.image_sizes) else None,
        "one_core_preprocess_median_per_s": round(one_core_median),
        "model": str(models[first]),
        "models": {label: str(path) for label, path in models.items()},
        "model_ratios": by_model,  # each later model over the first, per case and size
        "cores": cores,
        "machine": platform.processor() or platform.machine(),
        "load_avg_1m": os.getloadavg()[0],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)  # the image folders: gigabytes at full size


if __name__ == "__main__":
    main()
