"""HTTP load benchmark with wrk: bare Starlette, minimal BentoML and our service, in one run.

Each server runs alone (never two at once), pinned with ``taskset`` to one core; ``wrk``
(a C load generator, Debian package) is pinned to another. Per server and payload (a
28x28 JSON array to /predict_array, a 200x200 PNG to /predict; with ``--payloads`` also
``batch``, BATCH arrays as JSON to /predict_batch, ``npy``, the same BATCH arrays as
one uint8 .npy body to /predict_npy, which only our service answers, and ``npy-bin``, the
same answered as an .npy too (``Accept: application/x-npy``); a checkout that does not
answer a payload's route is skipped for it):

* closed loop at C = 1, 8, 32 connections: req/s, p50, p99 (wrk's own percentiles);
  the best req/s is the server's *peak*;
* paced load at half the peak: a Lua ``delay()`` gives each of 32 connections random
  exponential think times averaging 32 / (0.5 x peak), so each connection is a Poisson
  source and together they approximate open-loop arrivals at half the peak (wrk2, the
  open-loop fork, is not in Debian). A fixed delay instead lines the connections up:
  after one slow answer they all fire together, bursts no independent users make. A
  stall still shows in p99, though a request delayed by it is timed from its send.

"ours-nolog" is our service with the inference log off (``MNIST_INFERENCE_LOG=off``);
"ours" logs every answer, images included, to a folder under the run's temp dir, so
the last lines say what observing costs: 1 - ours / ours-nolog peak. "ours-shadow" is
"ours" following a registry (a sqlite store in its temp dir, made as the tests make one:
the model registered as champion and again as challenger) with ``MNIST_CHALLENGER=shadow``,
so every request is scored twice and logged with both: what shadowing costs is
1 - ours-shadow / ours peak. On a shared machine, ``--rounds N`` runs the servers N times
in alternating order and reports each cost as the median over the rounds (the table
shows the first round).

Each cell also records the server's CPU time per request (user + system seconds of its
process tree, psutil, over the cell / requests answered): unlike req/s it barely moves
when other processes share the machine. Prints a table with our/baseline ratios (and
images/s for the batch payloads) and writes JSON::

    python bench/serve_load.py --model models/model.onnx          # 10 s a cell, ~5 min
    python bench/serve_load.py --model models/model.onnx --seconds 3  # ~2 min
    python bench/serve_load.py --quick --servers ours --payloads array  # seconds: does it run?
    # a change to the service against another checkout of it, in the same run:
    python bench/serve_load.py --quick --tree before=../checkout-before --servers starlette
    # the bulk routes: images/s of a BATCH-image .npy body against the same as JSON, on
    # this checkout and on the one issue 19 measured (its "bulk_ratios" in the JSON)
    python bench/serve_load.py --quick --servers ours --payloads batch,npy,npy-bin \
        --tree issue19=../checkout-at-59fc62f
    # what the inference log costs:
    python bench/serve_load.py --servers ours-nolog,ours --rounds 6 \
        --out bench/results/serve_load-logging.json
    # what shadowing a challenger costs (array and PNG, on and off in one run):
    python bench/serve_load.py --servers ours,ours-shadow --rounds 4 \
        --out bench/results/serve_load-shadow.json
    # two models of one export on the same service (rows ours-float32, ours-int8; the
    # baseline serves the first), with ONNX Runtime alone on each as the reference:
    python bench/serve_load.py --servers ours --payloads array,png,batch,npy \
        --models float32=models/model.onnx int8=models/model.int8.onnx

With ``--models``, each of our servers named in ``--servers`` runs once per model, as
``ours-NAME``; "model_ratios" in the JSON holds each later model over the first per
payload (peak req/s, CPU a request, p50 at C = 1, each as a speed-up above 1 where
the later model is better), and "direct" ONNX Runtime alone on each (bench/models_compare.py).

Targets (issue 11): ours >= 0.5x the baseline's peak for PNG, >= 0.45x for arrays;
p99 <= 5 ms at C = 1 and <= 25 ms at half the peak. The inference log may cost at most
10 % of the peak; shadowing a challenger at most 15 % (issue 26).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from common import machine  # bench/ is sys.path[0]
from http_harness import (
    OURS,
    PAYLOADS,
    REPO,
    Payload,
    checkout,
    payloads,
    server,
    wrk,
)
from models_compare import QUICK_SECONDS as DIRECT_QUICK_SECONDS
from models_compare import (
    describe,
    direct_all,
    direct_ratios,
    direct_table,
    over_first,
    parse_models,
)
from shadow_registry import shadow_registry

from mnist_mlops.core.fileio import write_json

SERVERS = {  # name -> command (the port is appended); all read MNIST_MODEL_PATH or --model
    "starlette": [sys.executable, "bench/baseline_server.py", "--model", "{model}", "--port"],
    "bentoml-minimal": [sys.executable, "-m", "bentoml", "serve",
                        "bench.minimal_bento:MinimalMnist", "--host", "127.0.0.1", "--port"],
    "ours": OURS,
    "ours-nolog": OURS,
    "ours-shadow": OURS,
}  # fmt: skip
# Per server, on top of the common environment ({home}: the server's temp folder).
SERVER_ENV = {
    "ours": {"MNIST_INFERENCE_LOG_DIR": "{home}/inference",
             "MNIST_FEEDBACK_DB": "sqlite:///{home}/feedback.sqlite"},
    "ours-nolog": {"MNIST_INFERENCE_LOG": "off"},
    # Follows {home}'s registry (shadow_registry.py) instead of the file.
    "ours-shadow": {"MNIST_INFERENCE_LOG_DIR": "{home}/inference",
                    "MNIST_FEEDBACK_DB": "sqlite:///{home}/feedback.sqlite",
                    "MNIST_MODEL_PATH": "", "MNIST_CHALLENGER": "shadow",
                    "MNIST_MODEL_URI": "models:/mnist-mlp@champion",
                    "MLFLOW_TRACKING_URI": "sqlite:///{home}/registry/mlflow.db",
                    "MNIST_SMOKE_PATH": "{home}/registry/smoke.npz"},
}  # fmt: skip
BASELINE = "starlette"  # every ratio is against it, measured in the same run
BASELINE_PAYLOADS = ("array", "png")  # what the baseline and the minimal service answer
BULK_FLOOR = ("npy", "npy-bin")  # ... and what the baseline alone answers besides
CONCURRENCY = (1, 8, 32)
PACED_CONNECTIONS = 32
QUICK_SECONDS = 1.0  # a cell: the shortest wrk run
DIRECT_SECONDS = 3.0  # each ONNX Runtime reference (--models)


class Served(NamedTuple):
    """One server of a run: what SERVERS calls it (its kind), where, and which model."""

    kind: str
    command: list[str]
    tree: Path
    model: Path


def measure(
    servers: dict[str, Served], kinds: tuple[str, ...], seconds: float, folder: Path,
) -> dict[str, dict[str, dict]]:  # fmt: skip
    """Our service (any checkout, any model) gets every payload in ``kinds``; the baseline
    and the minimal service only those they answer."""
    server_core, load_core = 0, 1 if (os.cpu_count() or 1) > 1 else 0
    bodies = payloads(folder)
    results: dict[str, dict[str, dict]] = {}
    for name, (kind_of_server, command, tree, model) in servers.items():
        wanted = [k for k in kinds if command is OURS or k in BASELINE_PAYLOADS
                  or (name == BASELINE and k in BULK_FLOOR)]  # fmt: skip
        if not wanted:
            continue
        home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=folder))  # one per round
        if kind_of_server == "ours-shadow":
            shadow_registry(home / "registry", model)
        extra = {k: v.format(home=home) for k, v in SERVER_ENV.get(kind_of_server, {}).items()}
        with server(command, tree, model, server_core, home, extra) as (url, pid):
            for kind in wanted:
                payload = bodies[kind]
                if not answers(url, payload):  # an older checkout without the route
                    print(f"  {name:16s} {kind:7s} skipped: {payload.route} not answered")
                    continue
                wrk(url, payload, 8, 1, load_core, 0, folder, pid)  # warm-up, discarded
                before = log_counts(url) if command is OURS else {}
                closed = [wrk(url, payload, c, seconds, load_core, 0, folder, pid)
                          for c in CONCURRENCY]  # fmt: skip
                peak = max(r["rps"] for r in closed)
                pace = 1e3 * PACED_CONNECTIONS / (peak / 2)
                half = wrk(url, payload, PACED_CONNECTIONS, seconds, load_core, pace, folder, pid)
                after = log_counts(url) if command is OURS else {}
                results.setdefault(name, {})[kind] = {
                    "closed": closed, "peak_rps": peak, "half_peak": half,
                    "peak_images_per_s": max(r["images_per_s"] for r in closed),
                    # what the inference log wrote and dropped over the cells (0 when off)
                    "log_records": {k: after[k] - before[k] for k in after},
                }  # fmt: skip
                print(f"  {name:16s} {kind:7s} peak {peak:7.0f} req/s", flush=True)
    return results


def log_counts(url: str, settle_s: float = 10.0) -> dict[str, float]:
    """The inference log's records written and dropped so far, from /metrics, once they
    stop moving (the writer writes what is queued within its flush interval)."""
    last: dict[str, float] | None = None
    deadline = time.monotonic() + settle_s
    while True:
        with urllib.request.urlopen(url + "/metrics", timeout=30) as answer:
            text = answer.read().decode()
        now = {"written": 0.0, "dropped": 0.0}
        for line in text.splitlines():
            if line.startswith("mnist_inference_log_records_total"):
                now["written"] += float(line.rsplit(" ", 1)[1])
            elif line.startswith("mnist_inference_log_dropped_records_total"):
                now["dropped"] += float(line.rsplit(" ", 1)[1])
        if now == last or time.monotonic() > deadline:
            return now
        last = now
        time.sleep(0.5)


def answers(url: str, payload: Payload) -> bool:
    """Whether the server answers ``payload`` with a 200 (one request)."""
    headers = {"Content-Type": payload.content_type}
    if payload.accept:
        headers["Accept"] = payload.accept
    request = urllib.request.Request(url + payload.route, payload.body.read_bytes(), headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status == 200
    except urllib.error.HTTPError:
        return False


def bulk_ratios(results: dict[str, dict[str, dict]]) -> dict[str, float]:
    """Peak images/s of each server's binary payloads over each server's JSON batch, as
    "ours npy-bin / ours batch": the same server's, and another checkout's (--tree)."""
    return {
        f"{name} {kind} / {base} batch": r["peak_images_per_s"] / json["peak_images_per_s"]
        for name, by_kind in results.items()
        for kind, r in by_kind.items() if kind.startswith("npy")
        for base, kinds in results.items() if (json := kinds.get("batch"))
    }  # fmt: skip


def table(results: dict[str, dict[str, dict]]) -> str:
    """One row per server and payload; ratios against the baseline where it ran that payload."""
    cols = "".join(f" | C={c:<2d} req/s  p50   p99" for c in CONCURRENCY)
    head = (f"{'server':16s} {'payload':7s}{cols} | half-peak p99 | x base"
            " | CPU/req C=8 | x base CPU | peak img/s")  # fmt: skip
    lines = [head, "-" * len(head)]
    base = results.get(BASELINE, {})
    for name, kinds in results.items():
        for kind, r in kinds.items():
            cells = "".join(f" | {c['rps']:9.0f} {c['p50_ms']:5.1f} {c['p99_ms']:5.1f}"
                            for c in r["closed"])  # fmt: skip
            cpu = r["closed"][CONCURRENCY.index(8)]["cpu_us"]
            if kind in base:
                ratio = f"{r['peak_rps'] / base[kind]['peak_rps']:5.2f}"
                base_cpu = base[kind]["closed"][CONCURRENCY.index(8)]["cpu_us"]
                cpu_ratio = f"{base_cpu / cpu:10.2f}"
            else:
                ratio, cpu_ratio = f"{'-':>5s}", f"{'-':>10s}"
            lines.append(f"{name:16s} {kind:7s}{cells} | {r['half_peak']['p99_ms']:10.1f} ms"
                         f" | {ratio} | {cpu:8.0f} us | {cpu_ratio}"
                         f" | {r['peak_images_per_s']:10.0f}")  # fmt: skip
    return "\n".join(lines)


def ratios(results: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per server and payload the baseline answers: peak req/s and CPU/request vs the baseline."""
    base = results.get(BASELINE, {})
    eight = CONCURRENCY.index(8)
    return {
        name: {
            kind: {"peak": r["peak_rps"] / base[kind]["peak_rps"],
                   "cpu": base[kind]["closed"][eight]["cpu_us"] / r["closed"][eight]["cpu_us"]}
            for kind, r in kinds.items() if kind in base
        }
        for name, kinds in results.items() if name != BASELINE
    }  # fmt: skip


def model_ratios(results: dict[str, dict[str, dict]], models: list[str]) -> dict:
    """Per our server and payload, each later model over the first, as speed-ups:
    ``{"ours int8/float32": {"array": {"peak_rps": x, "cpu": y, "p50_c1": z}}}``: peak
    req/s, CPU a request at C = 8 and p50 at C = 1, each above 1 where the later is better."""
    one, eight = CONCURRENCY.index(1), CONCURRENCY.index(8)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for server_kind in ("ours", "ours-nolog"):
        for payload in PAYLOADS:
            cells = {m: r[payload] for m in models
                     if payload in (r := results.get(f"{server_kind}-{m}", {}))}  # fmt: skip
            if not models or models[0] not in cells:
                continue
            metrics = {
                "peak_rps": over_first({m: c["peak_rps"] for m, c in cells.items()}),
                "cpu": over_first({m: c["closed"][eight]["cpu_us"] for m, c in cells.items()},
                                  higher_is_better=False),
                "p50_c1": over_first({m: c["closed"][one]["p50_ms"] for m, c in cells.items()},
                                     higher_is_better=False),
            }  # fmt: skip
            for metric, by_pair in metrics.items():
                for pair, ratio in by_pair.items():
                    row = out.setdefault(f"{server_kind} {pair}", {})
                    row.setdefault(payload, {})[metric] = ratio
    return out


def log_cost(
    rounds: list[dict[str, dict[str, dict]]], kinds: tuple[str, ...],
    without: str = "ours-nolog", with_: str = "ours",
) -> dict:  # fmt: skip
    """Per payload, the median over rounds of what ``with_`` costs over ``without`` (by
    default the inference log): the share of the peak (1 - with_ / without) and CPU a
    request (with_ / without, C = 8)."""
    eight = CONCURRENCY.index(8)
    if not all({with_, without} <= set(r) for r in rounds):
        return {}
    return {
        kind: {
            "peak_share": statistics.median(
                1 - r[with_][kind]["peak_rps"] / r[without][kind]["peak_rps"]
                for r in rounds),
            "cpu_ratio": statistics.median(
                r[with_][kind]["closed"][eight]["cpu_us"]
                / r[without][kind]["closed"][eight]["cpu_us"] for r in rounds),
            "rounds": len(rounds),
            "by_round": [{name: {"peak_rps": r[name][kind]["peak_rps"],
                                 "cpu_us": r[name][kind]["closed"][eight]["cpu_us"]}
                          for name in (without, with_)} for r in rounds],
        }
        for kind in kinds
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/model.onnx")
    parser.add_argument("--seconds", type=float, default=10.0, help="per cell")
    parser.add_argument("--quick", action="store_true", help="1 s a cell: proves it runs")
    parser.add_argument("--payloads", default="array,png", help=f"some of {','.join(PAYLOADS)}")
    parser.add_argument("--servers", default=",".join(n for n in SERVERS if n != "ours-shadow"),
                        help=f"some of {','.join(SERVERS)} ({BASELINE} always runs)")  # fmt: skip
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                        help="also serve our service from another checkout, as NAME")  # fmt: skip
    parser.add_argument("--models", nargs="+", default=[], metavar="NAME=PATH",
                        help="ours per model, as ours-NAME; others serve the first")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the servers this many times, alternating the order")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise SystemExit("wrk and taskset are needed: run scripts/install_system_packages.sh")
    kinds = tuple(args.payloads.split(","))
    if not set(kinds) <= set(PAYLOADS):
        raise SystemExit(f"--payloads: choose from {','.join(PAYLOADS)}")
    names = [BASELINE] + [n for n in args.servers.split(",") if n != BASELINE]
    if not set(names) <= set(SERVERS):
        raise SystemExit(f"--servers: choose from {','.join(SERVERS)}")
    models = parse_models(args.models) if args.models else {}
    first = next(iter(models.values()), args.model.resolve())
    servers: dict[str, Served] = {}
    for name in names:
        for label, path in models.items() if SERVERS[name] is OURS else ():
            servers[f"{name}-{label}"] = Served(name, OURS, REPO, path)
        if SERVERS[name] is not OURS or not models:
            servers[name] = Served(name, SERVERS[name], REPO, first)
    for spec in args.tree:
        name, folder = checkout(spec)
        servers[name] = Served(name, OURS, folder, first)
    seconds = QUICK_SECONDS if args.quick else args.seconds
    direct = direct_all(models, DIRECT_QUICK_SECONDS if args.quick else DIRECT_SECONDS)
    if direct:
        print(direct_table(direct), flush=True)
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            order = dict(list(servers.items())[:: 1 if i % 2 == 0 else -1])
            rounds.append(measure(order, kinds, seconds, Path(tmp)))
    results = {name: rounds[0][name] for name in servers if name in rounds[0]}
    print(table(results))
    by_model = model_ratios(results, list(models))
    labels = {"peak_rps": "peak", "cpu": "CPU a request", "p50_c1": "p50 at C=1"}
    for pair, by_payload in by_model.items():
        for kind, r in by_payload.items():  # a cell with no answers has no ratio
            print(f"{pair}, {kind}: " + ", ".join(f"{labels[m]} {x:.2f}x" for m, x in r.items()))
    costs = log_cost(rounds, kinds)
    shadow = log_cost(rounds, kinds, without="ours", with_="ours-shadow")
    bulk = bulk_ratios(results)
    for pair, ratio in bulk.items():
        print(f"images/s, {pair}: {ratio:.2f}x")
    for what, by_kind in (("inference log", costs), ("shadow challenger", shadow)):
        for kind, cost in by_kind.items():
            print(f"{what}, {kind} (median of {args.rounds}): {100 * cost['peak_share']:.1f} %"
                  f" of the peak, {cost['cpu_ratio']:.2f}x CPU a request")  # fmt: skip
    for round_results in rounds:  # a log that cannot keep up drops: it must say so here
        for name in ("ours", "ours-shadow"):
            for kind, cells in round_results.get(name, {}).items():
                counts = cells["log_records"]
                print(f"inference log, {name} {kind}: {counts['written']:.0f} records written, "
                      f"{counts['dropped']:.0f} dropped")  # fmt: skip
    suffix = "-".join(k for k in kinds) if kinds != ("array", "png") else ""
    name = "-".join(p for p in ("serve_load", suffix, "quick" if args.quick else "") if p)
    out = args.out or REPO / "bench/results" / f"{name}.json"
    write_json(out, {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),  # its load average: other users share the cores
        "seconds_per_cell": seconds, "servers": {n: str(s.tree) for n, s in servers.items()},
        "server_models": {n: str(s.model) for n, s in servers.items()},
        "results": results, "ratios_by_server": (by_server := ratios(results)),
        # ours against the baseline, as before: {payload: ratio}
        "ratios": {k: r["peak"] for k, r in by_server.get("ours", {}).items()},
        "cpu_ratios": {k: r["cpu"] for k, r in by_server.get("ours", {}).items()},
        "log_cost": costs, "shadow_cost": shadow, "bulk_ratios": bulk,
        # --models: each model's card, ONNX Runtime alone on each, later models over the first
        "models": describe(models), "direct": direct, "direct_ratios": direct_ratios(direct),
        "model_ratios": by_model,
    })  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
