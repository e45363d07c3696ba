"""HTTP load benchmark with wrk: bare Starlette, minimal BentoML and our service, in one run.

Each server runs alone (never two at once), pinned with ``taskset`` to one core; ``wrk``
(a C load generator, Debian package) is pinned to another. Per server and payload (a
28x28 JSON array to /predict_array, a 200x200 PNG to /predict; with ``--payloads`` also
``batch``, BATCH arrays as JSON to /predict_batch, which only our service answers):

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
the last lines say what observing costs: 1 - ours / ours-nolog peak. On a shared
machine, ``--rounds N`` runs the servers N times in alternating order and reports that
cost as the median over the rounds (the table shows the first round).

Each cell also records the server's CPU time per request (user + system seconds of its
process tree, psutil, over the cell / requests answered): unlike req/s it barely moves
when other processes share the machine. Prints a table with our/baseline ratios (and
images/s for the batch payloads) and writes JSON::

    python bench/serve_load.py --model models/model.onnx          # 10 s a cell, ~5 min
    python bench/serve_load.py --model models/model.onnx --quick  # 3 s a cell, ~2 min
    # a change to the service against another checkout of it, in the same run:
    python bench/serve_load.py --quick --tree before=../checkout-before --servers starlette
    # what the inference log costs:
    python bench/serve_load.py --servers ours-nolog,ours --rounds 6 \
        --out bench/results/serve_load-logging.json

Targets (issue 11): ours >= 0.5x the baseline's peak for PNG, >= 0.45x for arrays;
p99 <= 5 ms at C = 1 and <= 25 ms at half the peak. The inference log may cost at most
10 % of the peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]  # run as a script from anywhere

from mnist_mlops.core.fileio import write_json  # noqa: E402
from serving.schemas import MAX_BATCH, example_pixels  # noqa: E402

OURS = [sys.executable, "-m", "bentoml", "serve", "serving.service:MnistClassifier",
        "--host", "127.0.0.1", "--port"]  # fmt: skip
SERVERS = {  # name -> command (the port is appended); all read MNIST_MODEL_PATH or --model
    "starlette": [sys.executable, "bench/baseline_server.py", "--model", "{model}", "--port"],
    "bentoml-minimal": [sys.executable, "-m", "bentoml", "serve",
                        "bench.minimal_bento:MinimalMnist", "--host", "127.0.0.1", "--port"],
    "ours": OURS,
    "ours-nolog": OURS,
}  # fmt: skip
# Per server, on top of the common environment ({home}: the server's temp folder).
SERVER_ENV = {
    "ours": {"MNIST_INFERENCE_LOG_DIR": "{home}/inference",
             "MNIST_FEEDBACK_DB": "sqlite:///{home}/feedback.sqlite"},
    "ours-nolog": {"MNIST_INFERENCE_LOG": "off"},
}  # fmt: skip
BASELINE = "starlette"  # every ratio is against it, measured in the same run
BASELINE_PAYLOADS = ("array", "png")  # what the baseline and the minimal service answer
PAYLOADS = ("array", "png", "batch")
BATCH = MAX_BATCH  # images per batch request: the service's bound
CONCURRENCY = (1, 8, 32)
PACED_CONNECTIONS = 32
# Prints wrk's own numbers as one JSON line; `pace_ms` (global) turns on pacing.
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "%(content_type)s"
local f = io.open("%(body)s", "rb"); wrk.body = f:read("*all"); f:close()
pace_ms = %(pace_ms)s
math.randomseed(os.time())
-- Exponential think times: each connection is a Poisson source, so the total is close to
-- open-loop arrivals at the set rate (a fixed delay lines the connections up into bursts).
if pace_ms > 0 then function delay() return -math.log(1 - math.random()) * pace_ms end end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests": %%d, "seconds": %%f, "p50_us": %%d, "p99_us": %%d, '
    .. '"errors": %%d, "non_2xx": %%d}\\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def payloads(folder: Path) -> dict[str, tuple[str, str, Path, int]]:
    """name -> (route, content type, body file, images per request)."""
    from PIL import Image, ImageDraw

    array = folder / "array.json"
    array.write_text(json.dumps({"pixels": example_pixels()}))
    batch = folder / "batch.json"
    batch.write_text(json.dumps({"images": batch_pixels().tolist()}))
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).line([(40, 30), (160, 30), (90, 170)], fill=0, width=14)
    png = folder / "digit.png"
    img.save(png)
    boundary = "wrkboundary7MA4YWxkTrZu0gW"
    form = folder / "form.bin"
    form.write_bytes(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode() + png.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )  # fmt: skip
    return {
        "array": ("/predict_array", "application/json", array, 1),
        "png": ("/predict", f"multipart/form-data; boundary={boundary}", form, 1),
        "batch": ("/predict_batch", "application/json", batch, BATCH),
    }


def batch_pixels() -> np.ndarray:
    """BATCH different 28x28 images, 0..255 integers (seeded): (BATCH, 28, 28) uint8."""
    return np.random.default_rng(0).integers(0, 256, size=(BATCH, 28, 28), dtype=np.uint8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(
    command: list[str], tree: Path, model: Path, core: int, home: Path, extra: dict[str, str]
) -> Iterator[tuple[str, int]]:
    """Start ``command`` in checkout ``tree``, pinned to ``core``, with ``extra`` in its
    environment; yield (URL, pid) once /readyz answers; stop its process group."""
    port = free_port()
    command = [c.format(model=model) for c in command] + [str(port)]
    env = {**os.environ, "MNIST_MODEL_PATH": str(model), "BENTOML_HOME": str(home),
           "BENTOML_DO_NOT_TRACK": "true", "PYTHONPATH": f"{tree / 'src'}:{tree}",
           **{k: v.format(home=home) for k, v in extra.items()}}  # fmt: skip
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        ["taskset", "-c", str(core), *command],
        cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{command} did not start; see {home / 'server.log'}")
            time.sleep(0.3)
        yield url, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (BentoML's worker is one)."""
    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(p.cpu_times().user + p.cpu_times().system for p in tree)


def wrk(url: str, payload: tuple[str, str, Path, int], connections: int, seconds: float,
        core: int, pace_ms: float, folder: Path, pid: int) -> dict:  # fmt: skip
    route, content_type, body, images = payload
    script = folder / "load.lua"
    script.write_text(LUA % {"content_type": content_type, "body": body, "pace_ms": pace_ms})
    cpu = cpu_seconds(pid)
    out = subprocess.run(
        ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s",
         "--timeout", "10s", "-s", str(script), url + route],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    cpu = cpu_seconds(pid) - cpu
    raw = json.loads(next(line for line in out.splitlines() if line.startswith("WRK "))[4:])
    return {"connections": connections, "rps": raw["requests"] / raw["seconds"],
            "images_per_s": images * raw["requests"] / raw["seconds"],
            "p50_ms": raw["p50_us"] / 1e3, "p99_ms": raw["p99_us"] / 1e3,
            "errors": raw["errors"], "non_2xx": raw["non_2xx"], "paced_ms": pace_ms,
            "cpu_us": 1e6 * cpu / max(raw["requests"], 1)}  # fmt: skip


def measure(
    servers: dict[str, tuple[list[str], Path]], kinds: tuple[str, ...], model: Path,
    seconds: float, folder: Path,
) -> dict[str, dict[str, dict]]:  # fmt: skip
    """servers: name -> (command, checkout). Our service (any checkout) gets every payload
    in ``kinds``; the baseline and the minimal service only those they answer."""
    server_core, load_core = 0, 1 if (os.cpu_count() or 1) > 1 else 0
    bodies = payloads(folder)
    results: dict[str, dict[str, dict]] = {}
    for name, (command, tree) in servers.items():
        home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=folder))  # one per round
        wanted = [k for k in kinds if command is OURS or k in BASELINE_PAYLOADS]
        extra = SERVER_ENV.get(name, {})
        with server(command, tree, model, server_core, home, extra) as (url, pid):
            for kind in wanted:
                payload = bodies[kind]
                wrk(url, payload, 8, 1, load_core, 0, folder, pid)  # warm-up, discarded
                closed = [wrk(url, payload, c, seconds, load_core, 0, folder, pid)
                          for c in CONCURRENCY]  # fmt: skip
                peak = max(r["rps"] for r in closed)
                pace = 1e3 * PACED_CONNECTIONS / (peak / 2)
                half = wrk(url, payload, PACED_CONNECTIONS, seconds, load_core, pace, folder, pid)
                results.setdefault(name, {})[kind] = {
                    "closed": closed, "peak_rps": peak, "half_peak": half,
                    "peak_images_per_s": max(r["images_per_s"] for r in closed),
                }  # fmt: skip
                print(f"  {name:16s} {kind:5s} peak {peak:7.0f} req/s", flush=True)
    return results


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
    base = results[BASELINE]
    eight = CONCURRENCY.index(8)
    return {
        name: {
            kind: {"peak": r["peak_rps"] / base[kind]["peak_rps"],
                   "cpu": base[kind]["closed"][eight]["cpu_us"] / r["closed"][eight]["cpu_us"]}
            for kind, r in kinds.items() if kind in base
        }
        for name, kinds in results.items() if name != BASELINE
    }  # fmt: skip


def log_cost(rounds: list[dict[str, dict[str, dict]]], kinds: tuple[str, ...]) -> dict:
    """Per payload, the median over rounds of what the inference log costs: the share of
    the peak (1 - ours / ours-nolog) and CPU a request (ours / ours-nolog, C = 8)."""
    eight = CONCURRENCY.index(8)
    if not all({"ours", "ours-nolog"} <= set(r) for r in rounds):
        return {}
    return {
        kind: {
            "peak_share": statistics.median(
                1 - r["ours"][kind]["peak_rps"] / r["ours-nolog"][kind]["peak_rps"]
                for r in rounds),
            "cpu_ratio": statistics.median(
                r["ours"][kind]["closed"][eight]["cpu_us"]
                / r["ours-nolog"][kind]["closed"][eight]["cpu_us"] for r in rounds),
            "rounds": len(rounds),
            "by_round": [{name: {"peak_rps": r[name][kind]["peak_rps"],
                                 "cpu_us": r[name][kind]["closed"][eight]["cpu_us"]}
                          for name in ("ours-nolog", "ours")} for r in rounds],
        }
        for kind in kinds
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/model.onnx")
    parser.add_argument("--seconds", type=float, default=10.0, help="per cell")
    parser.add_argument("--quick", action="store_true", help="3 s a cell: proves it runs")
    parser.add_argument("--payloads", default="array,png", help=f"some of {','.join(PAYLOADS)}")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"some of {','.join(SERVERS)} ({BASELINE} always runs)")  # fmt: skip
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                        help="also serve our service from another checkout, as NAME")  # fmt: skip
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
    servers = {name: (SERVERS[name], REPO) for name in names}
    for spec in args.tree:
        name, _, folder = spec.partition("=")
        if not (Path(folder) / "serving" / "service.py").is_file():
            raise SystemExit(f"--tree {spec}: no serving/service.py under {folder}")
        servers[name] = (OURS, Path(folder).resolve())
    seconds = 3.0 if args.quick else args.seconds
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            order = dict(list(servers.items())[:: 1 if i % 2 == 0 else -1])
            rounds.append(measure(order, kinds, args.model.resolve(), seconds, Path(tmp)))
    results = {name: rounds[0][name] for name in servers}
    print(table(results))
    costs = log_cost(rounds, kinds)
    for kind, cost in costs.items():
        print(f"inference log, {kind} (median of {args.rounds}): {100 * cost['peak_share']:.1f} %"
              f" of the peak, {cost['cpu_ratio']:.2f}x CPU a request")  # fmt: skip
    out = args.out or REPO / "bench/results" / f"serve_load{'-quick' if args.quick else ''}.json"
    write_json(out, {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "seconds_per_cell": seconds, "servers": {n: str(t) for n, (_, t) in servers.items()},
        "results": results, "ratios_by_server": (by_server := ratios(results)),
        # ours against the baseline, as before: {payload: ratio}
        "ratios": {k: r["peak"] for k, r in by_server.get("ours", {}).items()},
        "cpu_ratios": {k: r["cpu"] for k, r in by_server.get("ours", {}).items()},
        "log_cost": costs,
    })  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
