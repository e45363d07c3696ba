"""HTTP load benchmark with wrk: bare Starlette, minimal BentoML and our service, in one run.

Each server runs alone (never two at once), pinned with ``taskset`` to one core; ``wrk``
(a C load generator, Debian package) is pinned to another. Per server and payload (a
28x28 JSON array to /predict_array, a 200x200 PNG to /predict):

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
the table's last lines say what observing costs: 1 - ours / ours-nolog peak. On a
shared machine, ``--rounds N`` runs the servers N times in alternating order and
reports each ratio as the median over the rounds (the table shows the first round).

Each cell also records the server's CPU time per request (user + system seconds of its
process tree, psutil, over the cell / requests answered): unlike req/s it barely moves
when other processes share the machine. Prints a table with our/baseline ratios and
writes JSON::

    python bench/serve_load.py --model models/model.onnx          # 10 s a cell, ~5 min
    python bench/serve_load.py --model models/model.onnx --quick  # 3 s a cell, ~2 min
    python bench/serve_load.py --servers ours,ours-nolog --rounds 5  # only the log's cost

Targets (issue 11): ours >= 0.5x the baseline's peak for PNG, >= 0.45x for arrays;
p99 <= 5 ms at C = 1 and <= 25 ms at half the peak. The inference log may cost at most
10 % of the peak.
"""

from __future__ import annotations

import argparse
import json
import math
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

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]  # run as a script from anywhere

from mnist_mlops.core.fileio import write_json  # noqa: E402
from serving.schemas import example_pixels  # noqa: E402

SERVERS = {  # name -> command (the port is appended); all read MNIST_MODEL_PATH or --model
    "starlette": [sys.executable, "bench/baseline_server.py", "--model", "{model}", "--port"],
    "bentoml-minimal": [sys.executable, "-m", "bentoml", "serve",
                        "bench.minimal_bento:MinimalMnist", "--host", "127.0.0.1", "--port"],
    "ours": [sys.executable, "-m", "bentoml", "serve", "serving.service:MnistClassifier",
             "--host", "127.0.0.1", "--port"],
    "ours-nolog": [sys.executable, "-m", "bentoml", "serve", "serving.service:MnistClassifier",
                   "--host", "127.0.0.1", "--port"],
}  # fmt: skip
# Per server, on top of the common environment ({home}: the server's temp folder).
SERVER_ENV = {
    "ours": {"MNIST_INFERENCE_LOG_DIR": "{home}/inference",
             "MNIST_FEEDBACK_DB": "sqlite:///{home}/feedback.sqlite"},
    "ours-nolog": {"MNIST_INFERENCE_LOG": "off"},
}  # fmt: skip
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


def payloads(folder: Path) -> dict[str, tuple[str, str, Path]]:
    """name -> (route, content type, body file)."""
    from PIL import Image, ImageDraw

    array = folder / "array.json"
    array.write_text(json.dumps({"pixels": example_pixels()}))
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
        "array": ("/predict_array", "application/json", array),
        "png": ("/predict", f"multipart/form-data; boundary={boundary}", form),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(name: str, model: Path, core: int, home: Path) -> Iterator[tuple[str, int]]:
    """Start ``name`` pinned to ``core``; yield (URL, pid) once /readyz answers; stop its group."""
    port = free_port()
    command = [c.format(model=model) for c in SERVERS[name]] + [str(port)]
    env = {**os.environ, "MNIST_MODEL_PATH": str(model), "BENTOML_HOME": str(home),
           "BENTOML_DO_NOT_TRACK": "true", "PYTHONPATH": f"{REPO / 'src'}:{REPO}",
           **{k: v.format(home=home) for k, v in SERVER_ENV.get(name, {}).items()}}  # fmt: skip
    log = (home / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        ["taskset", "-c", str(core), *command],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
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
                raise SystemExit(f"{name} did not start; see {home / (name + '.log')}")
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


def wrk(url: str, payload: tuple[str, str, Path], connections: int, seconds: float,
        core: int, pace_ms: float, folder: Path, pid: int) -> dict:  # fmt: skip
    route, content_type, body = payload
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
            "p50_ms": raw["p50_us"] / 1e3, "p99_ms": raw["p99_us"] / 1e3,
            "errors": raw["errors"], "non_2xx": raw["non_2xx"], "paced_ms": pace_ms,
            "cpu_us": 1e6 * cpu / max(raw["requests"], 1)}  # fmt: skip


def measure(
    model: Path, seconds: float, folder: Path, names: list[str]
) -> dict[str, dict[str, dict]]:
    server_core, load_core = 0, 1 if (os.cpu_count() or 1) > 1 else 0
    bodies = payloads(folder)
    results: dict[str, dict[str, dict]] = {}
    for name in names:
        home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=folder))
        with server(name, model, server_core, home) as (url, pid):
            for kind, payload in bodies.items():
                wrk(url, payload, 8, 1, load_core, 0, folder, pid)  # warm-up, discarded
                closed = [wrk(url, payload, c, seconds, load_core, 0, folder, pid)
                          for c in CONCURRENCY]  # fmt: skip
                peak = max(r["rps"] for r in closed)
                pace = 1e3 * PACED_CONNECTIONS / (peak / 2)
                half = wrk(url, payload, PACED_CONNECTIONS, seconds, load_core, pace, folder, pid)
                results.setdefault(name, {})[kind] = {"closed": closed, "peak_rps": peak,
                                                      "half_peak": half}  # fmt: skip
                print(f"  {name:16s} {kind:5s} peak {peak:7.0f} req/s", flush=True)
    return results


def ratio(results: dict, name: str, base: str, kind: str, key: str = "peak_rps") -> float:
    """``name``'s peak (or C=8 CPU/request) over ``base``'s; NaN if either was not run."""
    if name not in results or base not in results:
        return float("nan")
    if key == "peak_rps":
        return results[name][kind]["peak_rps"] / results[base][kind]["peak_rps"]
    at = CONCURRENCY.index(8)
    return results[name][kind]["closed"][at]["cpu_us"] / results[base][kind]["closed"][at]["cpu_us"]


def log_cost(results: dict[str, dict[str, dict]], kind: str) -> float:
    """Share of the peak the inference log costs: 1 - ours / ours-nolog."""
    return 1 - ratio(results, "ours", "ours-nolog", kind)


def table(results: dict[str, dict[str, dict]]) -> str:
    cols = "".join(f" | C={c:<2d} req/s  p50   p99" for c in CONCURRENCY)
    head = (f"{'server':16s} {'payload':7s}{cols} | half-peak p99 | x base"
            " | CPU/req C=8 | x base CPU")  # fmt: skip
    lines = [head, "-" * len(head)]
    for name, kinds in results.items():
        for kind, r in kinds.items():
            cells = "".join(f" | {c['rps']:9.0f} {c['p50_ms']:5.1f} {c['p99_ms']:5.1f}"
                            for c in r["closed"])  # fmt: skip
            cpu = r["closed"][CONCURRENCY.index(8)]["cpu_us"]
            peak, cpu_x = (
                ratio(results, name, "starlette", kind, key) for key in ("peak_rps", "cpu")
            )
            lines.append(f"{name:16s} {kind:7s}{cells} | {r['half_peak']['p99_ms']:10.1f} ms"
                         f" | {peak:5.2f} | {cpu:8.0f} us | {1 / cpu_x:10.2f}")  # fmt: skip
    kinds = next(iter(results.values()))
    lines += [f"inference log cost, {kind}: {100 * log_cost(results, kind):.1f} % of the peak, "
              f"{ratio(results, 'ours', 'ours-nolog', kind, 'cpu'):.2f}x CPU a request"
              for kind in kinds]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/model.onnx")
    parser.add_argument("--seconds", type=float, default=10.0, help="per cell")
    parser.add_argument("--quick", action="store_true", help="3 s a cell: proves it runs")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument("--rounds", type=int, default=1, help="repeat, alternating the order")
    args = parser.parse_args()
    names = args.servers.split(",")
    if not set(names) <= set(SERVERS):
        raise SystemExit(f"--servers: choose from {', '.join(SERVERS)}")
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise SystemExit("wrk and taskset are needed: run scripts/install_system_packages.sh")
    seconds = 3.0 if args.quick else args.seconds
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            order = names if i % 2 == 0 else names[::-1]
            rounds.append(measure(args.model.resolve(), seconds, Path(tmp), order))
    results = {name: rounds[0][name] for name in names}
    kinds = list(next(iter(results.values())))
    costs = {k: statistics.median(log_cost(r, k) for r in rounds) for k in kinds}
    cpu_costs = {k: statistics.median(ratio(r, "ours", "ours-nolog", k, "cpu") for r in rounds)
                 for k in kinds}  # fmt: skip
    print(table(results))
    for k in kinds:
        print(
            f"median of {args.rounds} rounds, {k}: the inference log costs "
            f"{100 * costs[k]:.1f} % of the peak, {cpu_costs[k]:.2f}x CPU a request"
        )
    out = args.out or REPO / "bench/results" / f"serve_load{'-quick' if args.quick else ''}.json"
    write_json(out, {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "seconds_per_cell": seconds, "results": results,
        "ratios": {k: _number(ratio(results, "ours", "starlette", k)) for k in kinds},
        "cpu_ratios": {k: _number(1 / ratio(results, "ours", "starlette", k, "cpu"))
                       for k in kinds},
        "log_cost": {k: _number(costs[k]) for k in kinds},
        "log_cpu_ratio": {k: _number(cpu_costs[k]) for k in kinds},
        "rounds": [{name: {k: _summary(r[name][k]) for k in kinds} for name in names}
                   for r in rounds],
    })  # fmt: skip
    print(f"wrote {out}")


def _summary(cell: dict) -> dict[str, float]:
    """One server and payload in one round: its peak and its CPU a request at C = 8."""
    return {"peak_rps": cell["peak_rps"],
            "cpu_us_c8": cell["closed"][CONCURRENCY.index(8)]["cpu_us"]}  # fmt: skip


def _number(value: float) -> float | None:
    """JSON has no NaN: a ratio of servers not run this time is null."""
    return None if math.isnan(value) else value


if __name__ == "__main__":
    main()
