"""The benchmark sections of the results page, one per bench/results file (see results.py)."""

from __future__ import annotations

import json
from pathlib import Path

from mnist_mlops.reporting import int8, monitoring
from mnist_mlops.reporting.ideas import field_ideas, readability
from mnist_mlops.reporting.markdown import load, num, pct, table

# The files rendered here: anything else under bench/results is listed as not rendered.
PATTERNS = (
    "preprocess*.json",
    "serve_load.json",
    "train_speed-*.json",
    "accuracy-*.jsonl",
    "bulk_score.json",
    "serve_load-batch-npy.json",
    "serve_load-shadow.json",
    "field_ideas.jsonl",
    "readability_*",
)


def preprocessing(root: Path) -> list[str]:
    out = []
    for path in sorted((root / "bench/results").glob("preprocess*.json")):
        data = load(path)
        rows = [
            [
                r["image"],
                f"{r['bytes']:,}",
                f"{r['decode_ms']:.2f} ms",
                f"{r['preprocess_ms']:.2f} ms",
                f"{r['ratio']:.2f}",
            ]
            for r in data["rows"]
        ]
        out += [
            f"## Preprocessing speed (`{path.relative_to(root)}`)",
            f"Median of {data['repeat']} runs on a {data['cpus']}-CPU {data['machine']} machine "
            f"(1-minute load average {data['load_avg_1m']:.1f}). Baseline: Pillow decoding the "
            "whole file and nothing else, in the same run.",
            table(["image", "bytes", "full decode", "preprocess_image", "ratio"], rows),
        ]
    return out


def serving(root: Path) -> list[str]:
    path = root / "bench/results/serve_load.json"
    if not path.exists():
        return []
    data = load(path)
    res = data["results"]
    conns = [c["connections"] for c in res["starlette"]["array"]["closed"]]
    head = ["server", "payload"]
    head += [f"C={c} req/s, p50 / p99 ms" for c in conns]
    head += ["half-peak p99", "peak x base", "CPU/req C=8", "CPU x base"]
    rows = []
    for name, kinds in res.items():
        for kind, r in kinds.items():
            base = res["starlette"][kind]
            cpu, base_cpu = (x["closed"][conns.index(8)]["cpu_us"] for x in (r, base))
            cells = [f"{c['rps']:.0f}, {c['p50_ms']:.1f} / {c['p99_ms']:.1f}" for c in r["closed"]]
            rows.append(
                [
                    name,
                    kind,
                    *cells,
                    f"{r['half_peak']['p99_ms']:.1f} ms",
                    f"{r['peak_rps'] / base['peak_rps']:.2f}",
                    f"{cpu:.0f} us",
                    f"{base_cpu / cpu:.2f}",
                ]
            )
    return [
        "## Serving under load (`bench/results/serve_load.json`)",
        f"Run {data['when']}, {data['machine']['cpus']} CPUs, {data['seconds_per_cell']:g} s a "
        "cell. x base: the server's peak req/s over that of `starlette` (the bare baseline in the "
        "same run), and the baseline's CPU time per request over the server's.",
        table(head, rows),
    ]


def training_speed(root: Path) -> list[str]:
    out = []
    for path in sorted((root / "bench/results").glob("train_speed-*.json")):
        data = load(path)
        rows = [
            [
                n,
                r["description"],
                r["cfg"]["batch_size"],
                f"{r['epoch_s']:.2f} s",
                num(r["time_to_target_s"], ".1f", " s"),
            ]
            for n, r in data["runs"].items()
        ]
        ratios = "; ".join(
            f"{k.replace('_over_', '/')}: {num(v['time_to_target'], 'g', none='n/a')}x to target, "
            f"{num(v['epoch'], 'g', none='n/a')}x an epoch"
            for k, v in data["ratios"].items()
        )
        out += [
            f"## Training speed (`{path.relative_to(root)}`)",
            f"{data['device']}, torch {data['torch']}, Lightning {data['lightning']}; target "
            f"{pct(data['target_test_acc'], 0)} test accuracy. Ratios: {ratios}.",
            table(["run", "what", "batch", "epoch", f"to {pct(data['target_test_acc'], 0)}"], rows),
        ]
    return out


def accuracy_sweeps(root: Path) -> list[str]:
    out = []
    for path in sorted((root / "bench/results").glob("accuracy-*.jsonl")):
        runs = load(path)
        rows = [
            [
                r["name"],
                r["seed"],
                pct(r["test_acc"]),
                r["epochs"],
                f"{r['fit_s']:.0f} s",
                r["device"],
                f"`{json.dumps(r['overrides'])}`" if r["overrides"] else "",
            ]
            for r in runs
        ]
        out += [
            f"## Accuracy over seeds (`{path.relative_to(root)}`, `bench/accuracy.py`)",
            table(
                ["config", "seed", "test accuracy", "epochs", "fit", "device", "overrides"], rows
            ),
        ]
    return out


def bulk_scoring(root: Path) -> list[str]:
    path = root / "bench/results/bulk_score.json"
    if not path.exists():
        return []
    data = load(path)
    rows = [
        [
            r["case"],
            f"{r['n']:,}",
            f"{r['images_per_s_to_output']:,}/s",
            f"{r['reference']} {r['reference_per_s']:,}/s",
            f"{r['ratio_to_output']:.2f}",
            f"{r['ratio']:.2f}",
            f"{r['peak_tree_rss_mb']:.0f} MB",
        ]
        for r in data["rows"]
    ]
    return [
        f"## Bulk scoring (`{path.relative_to(root)}`, `bench/bulk_score.py`)",
        f"Whole commands on a {data['cores']}-CPU {data['machine']} machine (1-minute load "
        f"average {data['load_avg_1m']:.1f}); each against its baseline in the same run: "
        "ONNX Runtime called directly on the same arrays, or cores x one core's "
        "preprocessing rate for images. 'to output': until the predictions file is in place; "
        "'to exit': including the MLflow run.",
        table(
            ["case", "inputs", "rate to output", "baseline", "to output", "to exit", "peak RSS"],
            rows,
        ),
    ]


def bulk_http(root: Path) -> list[str]:
    path = root / "bench/results/serve_load-batch-npy.json"
    if not path.exists():
        return []
    data = load(path)
    eight = [c["connections"] for c in next(iter(data["results"].values()))["npy"]["closed"]]
    rows = [
        [name, kind, f"{r['peak_images_per_s']:,.0f}/s",
         f"{r['closed'][eight.index(8)]['cpu_us'] / 1000:.1f} ms"]
        for name, kinds in data["results"].items() for kind, r in kinds.items()
    ]  # fmt: skip
    ratios = [[pair, f"{ratio:.2f}x"] for pair, ratio in data.get("bulk_ratios", {}).items()]
    return [
        f"## Bulk HTTP routes (`{path.relative_to(root)}`, `bench/serve_load.py`)",
        f"Run {data['when']}, {data['machine']['cpus']} CPUs (1-minute load average "
        f"{data['machine']['load_average_1min']:.1f}), each server alone on one core, wrk on "
        "the other. Payloads: `batch`, 256 images as JSON to /predict_batch; `npy`, the same "
        "as an .npy to /predict_npy; `npy-bin`, that answered as an .npy. `starlette`: the "
        "floor of a Python bulk route (numpy.load, the model, the answer; no checks, ids or "
        "log); `ours-nolog`: the service with its inference log off; any other name, the "
        "service at an older commit.",
        table(["server", "payload", "peak images/s", "CPU a request (C=8)"], rows),
        table(["images/s, in the same run", "ratio"], ratios),
    ]


def shadow_cost(root: Path) -> list[str]:
    """What shadowing a challenger costs: the service following the registry with
    ``MNIST_CHALLENGER=shadow`` against the same service on the same model, one run."""
    path = root / "bench/results/serve_load-shadow.json"
    if not path.exists():
        return []
    data = load(path)
    rows = [
        [kind, f"{c['rounds']}", pct(c["peak_share"]), f"{c['cpu_ratio']:.2f}x"]
        for kind, c in data["shadow_cost"].items()
    ]
    return [
        f"## Shadowing a challenger (`{path.relative_to(root)}`, `bench/serve_load.py`)",
        f"Run {data['when']}, {data['machine']['cpus']} CPUs, each server alone on one core, "
        "wrk on the other. `ours-shadow` follows a registry whose champion and challenger are "
        "the same model, so every request is scored twice (the second time in the inference "
        "log's writer, batched) and logged with both; the cost is 1 - ours-shadow / ours peak "
        "requests/s, the median over rounds.",
        table(["payload", "rounds", "peak lost to shadowing", "CPU a request"], rows),
    ]


def bench_sections(root: Path) -> list[str]:
    """Every benchmark's tables, then a line naming result files nothing here reads."""
    results = root / "bench/results"
    parts = preprocessing(root) + serving(root) + training_speed(root) + accuracy_sweeps(root)
    parts += bulk_scoring(root) + bulk_http(root) + shadow_cost(root) + field_ideas(root)
    parts += readability(root) + int8.quantize_variants(root) + int8.int8_serving(root)
    parts += monitoring.log_cost(root) + monitoring.drift_scale(root)
    patterns = (*PATTERNS, *int8.PATTERNS, *monitoring.PATTERNS)
    known = {p for pattern in patterns for p in results.glob(pattern)}
    unread = sorted(p.name for p in results.iterdir() if p.is_file() and p not in known)
    if unread:
        parts.append("Not rendered here: " + ", ".join(f"`bench/results/{n}`" for n in unread))
    return parts
