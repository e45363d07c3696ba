"""Models of one export compared in one run: their names, the bare-runtime reference, ratios.

Used by bench/serve_load.py and bench/bulk_score.py (``--models float32=models/model.onnx
int8=models/model.int8.onnx``). The first model named is the one every other is divided by,
so "int8/float32" above 1 means int8 is faster. The reference is ONNX Runtime alone, with
the service's own session settings (one intra-op thread, no spinning) on one pinned core:
what a model costs before any HTTP, JSON or imaging, for one image a call (the single
routes) and for a BATCH a call (the bulk routes)::

    python bench/models_compare.py float32=models/model.onnx int8=models/model.int8.onnx
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from common import REPO, random_images  # bench/ is sys.path[0]

sys.path[:0] = [str(REPO / "src")]  # run as a script from anywhere

from mnist_mlops.inference.model_card import ModelCard  # noqa: E402
from mnist_mlops.inference.session import (  # noqa: E402
    INPUT_NAME,
    OUTPUT_NAME,
    as_model_input,
    inference_session,
)

BATCH = 256  # images a call for the bulk reference: the service's batch bound
QUICK_SECONDS = 0.3  # per reference measurement in quick mode: proves it runs


def parse_models(specs: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` -> {NAME: PATH}, in the order given; each PATH has its card beside it
    (the services refuse a model without one, so a missing card fails here, before any run)."""
    models: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or name in models:
            raise SystemExit(f"--models: expected distinct NAME=PATH, got {spec!r}")
        if not Path(path).is_file():
            raise SystemExit(f"--models: {path} not found (run `dvc repro export`)")
        ModelCard.read_beside(path).verify(path)
        models[name] = Path(path).resolve()
    return models


def describe(models: dict[str, Path]) -> dict[str, dict[str, str]]:
    """Per model: its file, precision and version as its card says (for the JSON)."""
    out = {}
    for name, path in models.items():
        card = ModelCard.read_beside(path)
        out[name] = {"path": str(path), "precision": card.precision, "version": card.version}
    return out


def direct_rates(model: Path, seconds: float, core: int = 0) -> dict[str, float]:
    """Images/s of ONNX Runtime alone on ``model``, one thread pinned to ``core``: one image
    a call ("one") and BATCH a call ("batch"), uint8 -> float32 conversion included (every
    caller pays it), each sustained for ``seconds`` after a warm-up call."""
    session = inference_session(model, threads=1)
    images = random_images(BATCH)
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core} & allowed or {min(allowed)})
    try:
        rates = {}
        for kind, size in (("one", 1), ("batch", BATCH)):
            session.run([OUTPUT_NAME], {INPUT_NAME: as_model_input(images[:size])})  # warm-up
            calls, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds:
                session.run([OUTPUT_NAME], {INPUT_NAME: as_model_input(images[:size])})
                calls += 1
            rates[kind] = size * calls / elapsed
        rates["one_us"] = 1e6 / rates["one"]  # a single call's latency, for the p50 column
        return rates
    finally:
        os.sched_setaffinity(0, allowed)


def direct_all(models: dict[str, Path], seconds: float) -> dict[str, dict[str, float]]:
    """direct_rates for each model, in the order given."""
    return {name: direct_rates(path, seconds) for name, path in models.items()}


def over_first(values: dict[str, float | None], higher_is_better: bool = True) -> dict[str, float]:
    """{model: value} -> {"int8/float32": speed-up of each later model over the first}.

    A speed-up either way: rates divide as later / first, costs (seconds, CPU a request)
    as first / later, so every ratio above 1 means the later model is better."""
    names = list(values)
    if not names:
        return {}
    first = values[names[0]]
    out = {}
    for name in names[1:]:
        value = values[name]
        if first and value:
            out[f"{name}/{names[0]}"] = value / first if higher_is_better else first / value
    return out


def direct_ratios(direct: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """{"int8/float32": {"one": x, "batch": y}}: the bare runtime's speed-ups."""
    out: dict[str, dict[str, float]] = {}
    for kind in ("one", "batch"):
        for pair, ratio in over_first({m: r[kind] for m, r in direct.items()}).items():
            out.setdefault(pair, {})[kind] = ratio
    return out


def direct_table(direct: dict[str, dict[str, float]]) -> str:
    """One line per model: the bare runtime's images/s, and the speed-ups over the first."""
    lines = [f"ONNX Runtime alone, 1 thread: {'model':10s} {'1 img/s':>9s} {'us/call':>8s}"
             f" {f'{BATCH} img/s':>10s}"]  # fmt: skip
    for name, r in direct.items():
        lines.append(f"{'':30s}{name:10s} {r['one']:9.0f} {r['one_us']:8.1f} {r['batch']:10.0f}")
    for pair, r in direct_ratios(direct).items():
        lines.append(f"{'':30s}{pair}: one {r['one']:.2f}x, batch {r['batch']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    """Print the reference alone: ``python bench/models_compare.py NAME=PATH ...``."""
    models = parse_models(sys.argv[1:])
    print(direct_table(direct_all(models, 2.0)))


if __name__ == "__main__":
    main()
