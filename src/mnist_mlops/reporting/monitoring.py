"""The monitoring sections of the results page: what the inference log costs on each route
(the Arrow log against the JSON-lines one it replaced), and what a drift report costs as
the log grows. Each reads its bench/results file; a missing file is a missing section."""

from __future__ import annotations

from pathlib import Path

from mnist_mlops.reporting.markdown import load, pct, table

PATTERNS = ("serve_load-logging.json", "serve_load-logging-jsonl.json", "drift_scale.json")
_LOG = "bench/results/serve_load-logging.json"
_BEFORE = "bench/results/serve_load-logging-jsonl.json"


def _dropped(data: dict, kind: str) -> str:
    """Records the log dropped over the payload's cells (first round), if the run counted."""
    counts = data["results"].get("ours", {}).get(kind, {}).get("log_records")
    return (
        "not counted"
        if counts is None
        else f"{counts['dropped']:,.0f} of {counts['written'] + counts['dropped']:,.0f}"
    )


def log_cost(root: Path) -> list[str]:
    """Log on against log off in one run, per payload, now and (when measured) before."""
    path = root / _LOG
    if not path.exists():
        return []
    now = load(path)
    before_path = root / _BEFORE
    before = load(before_path) if before_path.exists() else {"log_cost": {}}
    rows = []
    for kind, cost in now["log_cost"].items():
        old = before["log_cost"].get(kind)
        rows.append([
            kind,
            pct(old["peak_share"]) if old else "",
            f"{old['cpu_ratio']:.2f}x" if old else "",
            pct(cost["peak_share"]),
            _rounds(cost),
            f"{cost['cpu_ratio']:.2f}x",
            _dropped(now, kind),
        ])  # fmt: skip
    rounds = next(iter(now["log_cost"].values()))["rounds"] if now["log_cost"] else 0
    return [
        f"## What the inference log costs (`{_LOG}`, `bench/serve_load.py`)",
        f"Run {now['when']}, {now['machine']['cpus']} CPUs (1-minute load average "
        f"{now['machine']['load_average_1min']:.1f}), each server alone on one core, wrk on "
        f"the other; the median over {rounds} rounds of 1 - ours / ours-nolog peak requests/s "
        "and the CPU a request takes with the log against without (C = 8). 'JSON lines': "
        f"the same bench on the commit before the columnar log (`{_BEFORE}`). `array`: one "
        "28x28 JSON array; `png`: a 200x200 PNG; `batch`, `npy`, `npy-bin`: 256 images as JSON, "
        "as an .npy, and answered as an .npy. The target is at most 10 % of the peak. Each "
        "round's share is listed too: on this shared machine rounds swing by tens of percent, "
        "and a share below zero is that noise, not a log that speeds the service up.",
        table(
            [
                "payload",
                "JSON lines: peak lost",
                "CPU",
                "Arrow: peak lost",
                "each round",
                "CPU",
                "records dropped",
            ],
            rows,
        ),  # fmt: skip
    ]


def _rounds(cost: dict) -> str:
    """Each round's 1 - ours / ours-nolog peak, in the order run."""
    shares = [1 - r["ours"]["peak_rps"] / r["ours-nolog"]["peak_rps"] for r in cost["by_round"]]
    return " / ".join(f"{100 * share:.0f}" for share in shares) + " %"


def drift_scale(root: Path) -> list[str]:
    """A drift window of the same size over histories of 10k to 1M records."""
    path = root / "bench/results/drift_scale.json"
    if not path.exists():
        return []
    data = load(path)
    rows = []
    for row in data["rows"]:
        m = row["methods"]
        cells = [f"{m[k]['seconds']:.2f} s / {m[k]['work_mb']:.0f} MB"
                 for k in ("window", "every_file", "dicts", "report") if k in m]  # fmt: skip
        rows.append([f"{row['records']:,}", str(row["files"]), f"{row['disk_mb']:.0f}", *cells])
    return [
        f"## A drift report on a growing log (`{path.relative_to(root)}`, `bench/drift_scale.py`)",
        f"Run {data['when']}; each history ends with the same window of "
        f"{data['window_records']:,} records (the last hour). Time and the memory the work "
        "added, each in a fresh process: the window's own files and columns (what the report "
        "reads), every file with the same reader, the record-by-record reader it replaced, and "
        "the whole report (`python -m pipeline.monitor`, Evidently included).",
        table(
            [
                "records",
                "files",
                "MB on disk",
                "window",
                "every file",
                "dict reader",
                "whole report",
            ],
            rows,
        ),  # fmt: skip
    ]
