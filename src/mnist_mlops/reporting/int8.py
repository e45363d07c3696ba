"""The results page's int8 parts: the quantized artifact's parity, the gate's choice between
float32 and int8, and the benchmarks that compare the two (see results.py and bench.py).

Every number is read from the file that measured it: metrics/export.json and field.json
(the stages), bench/results/quantize_variants.json, serve_load-int8.json,
bulk_score-int8.json and serve_profile-<precision>.json (bench/run_int8_compare.sh).
"""

from __future__ import annotations

from pathlib import Path

from mnist_mlops.reporting.markdown import load, pct, table

# The bench files rendered here (reporting.bench lists them as known).
PATTERNS = (
    "quantize_variants.json",
    "serve_load-int8.json",
    "bulk_score-int8.json",
    "serve_profile-*.json",
)


def export_row(export: dict) -> list[list[str]]:
    """The quantized artifact's parity with the float model on MNIST test, or nothing."""
    q = export.get("int8")
    if not q:
        return []
    how = q["method"] + (" after quant_pre_process" if q.get("preprocess") else "")
    return [
        [
            "int8 artifact (export)",
            f"{how}: same digit as float32 on {pct(q['agreement'])} of {q['n_images']:,} images "
            f"({q['mismatches']} differ), largest probability difference "
            f"{q['max_prob_diff']:.3f}, test accuracy {pct(q['test_accuracy'])}",
        ]
    ]


def served_lines(field: dict) -> list[str]:
    """The gate's choice of artifact, and each artifact's accuracy on the same images
    (``test`` is the MNIST test split through ONNX)."""
    served = field.get("served")
    if not served:
        return []
    arts = field.get("artifacts", {})
    names = list(arts)
    sets = list(next(iter(arts.values()), {}))
    rows = [[s, *(pct(arts[a][s], 2) if s in arts[a] else "–" for a in names)] for s in sets]
    out = [
        f"Served: `{served['artifact']}` ({served['precision']}). {served['reason']}",
        table(["set", *names], rows) if rows else "",
    ]
    return [line for line in out if line]


def quantize_variants(root: Path) -> list[str]:
    """bench/quantize_variants.py: each way of quantizing, against float in the same run."""
    path = root / "bench/results/quantize_variants.json"
    if not path.exists():
        return []
    data = load(path)
    rows = []
    for name, v in data["variants"].items():
        field = v.get("field", {})
        rows.append(
            [
                name,
                "–" if "agreement" not in v else f"{pct(v['agreement'])} ({v['mismatches']})",
                "–" if "max_prob_diff" not in v else f"{v['max_prob_diff']:.4f}",
                pct(v.get("test_accuracy", v.get("float_test_accuracy", 0.0))),
                f"{v['one_image_ratio']:.3f}",
                f"{v['batch_ratio']:.3f}",
                " / ".join(pct(a, 1) for a in field.values()),
                ", ".join(v.get("contrib_ops", [])) or "none",
            ]
        )
    m = data["machine"]
    return [
        f"## Quantized variants (`{path.relative_to(root)}`, `bench/quantize_variants.py`)",
        f"`{data['model']}` on {data['n_test']:,} MNIST test images; ONNX Runtime "
        f"{data['onnxruntime']}, one thread on one core, {data['rounds']} rounds taking turns, "
        f"{m['cpus']} CPUs (1-minute load average {m['load_average_1min']:.1f}). Time is a "
        "ratio to float32 measured in the same rounds (below 1: faster). Field sets in the "
        f"order {', '.join(next(iter(data['variants'].values())).get('field', {}))}.",
        table(
            [
                "variant",
                "agreement (differ)",
                "max Δp",
                "test",
                "1 image x",
                "batch x",
                "field sets",
                "ONNX Runtime-only ops",
            ],
            rows,
        ),  # fmt: skip
    ]


def int8_serving(root: Path) -> list[str]:
    """serve_load and bulk_score with both artifacts in one run, and where the time goes."""
    out: list[str] = []
    path = root / "bench/results/serve_load-int8.json"
    if path.exists():
        data = load(path)
        rows = [
            [pair, payload, f"{r.get('peak_rps', 0):.2f}", f"{r.get('cpu', 0):.2f}",
             f"{r.get('p50_c1', 0):.2f}"]
            for pair, payloads in data["model_ratios"].items() for payload, r in payloads.items()
        ]  # fmt: skip
        direct = [
            [k, f"{r['one']:.2f}", f"{r['batch']:.2f}"] for k, r in data["direct_ratios"].items()
        ]
        out += [
            f"## int8 against float32 over HTTP (`{path.relative_to(root)}`)",
            f"Run {data['when']}, {data['machine']['cpus']} CPUs: the same service with each "
            "artifact, in one run; a ratio above 1 means int8 is better (peak req/s, CPU per "
            "request at 8 connections, median latency at 1).",
            table(["servers", "payload", "peak req/s x", "CPU/req x", "p50 x"], rows),
            "ONNX Runtime alone (one thread): images per second, int8 over float32.",
            table(["", "one image", "batch of 256"], direct),
        ]
    path = root / "bench/results/bulk_score-int8.json"
    if path.exists():
        data = load(path)
        rows = [
            [pair, r["case"], f"{r['n']:,}", f"{r['images_per_s_to_output']:.2f}",
             f"{r['reference_per_s']:.2f}"]
            for pair, cases in data["model_ratios"].items() for r in cases
        ]  # fmt: skip
        out += [
            f"## int8 against float32 in bulk scoring (`{path.relative_to(root)}`)",
            "Images per second to the predictions file, int8 over float32 in one run, and "
            "the same ratio for the baseline (ONNX Runtime called directly on arrays; for "
            "image folders the preprocessing rate, which the model does not change).",
            table(["models", "case", "inputs", "to output x", "baseline x"], rows),
        ]
    rows = []
    for path in sorted((root / "bench/results").glob("serve_profile-*.json")):
        data = load(path)
        for route, found in data["routes"].items():
            area, function = found["largest"]["area"], found["largest"]["function"]
            if area is None:  # no busy samples on this route
                continue
            rows.append(
                [data["model"]["precision"], route,
                 f"{area['area']} {pct(area['share'], 0)}",
                 f"`{function['function']}` {pct(function['share'], 0)}"]
            )  # fmt: skip
    if rows:
        out += [
            "## Where a served request's CPU goes (`bench/results/serve_profile-*.json`)",
            "py-spy samples of the serving worker under wrk, per route: the largest area of "
            "code and the largest single function, as shares of busy samples.",
            table(["precision", "route", "largest area", "largest function"], rows),
        ]
    return out
