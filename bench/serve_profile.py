"""Where our service spends a request, per route: py-spy samples it while wrk loads that route.

    python bench/serve_profile.py --model models/model.int8.onnx     # 4 s a route, ~1 min
    python bench/serve_profile.py --model models/model.onnx  # -> serve_profile-float32.json
    python bench/serve_profile.py --quick --model m.onnx --out /tmp/p.json  # proves it runs

Our service (as bench/serve_load.py's "ours": inference log on) runs alone on one core with
the model named; per payload (array, png, batch, npy by default) wrk keeps CONNECTIONS busy
on another core while ``py-spy record`` samples the server's processes (``--subprocesses``:
the BentoML worker is a child) for ``--seconds``, on the load core too. py-spy counts only
threads it sees running, and some waits still look running to it (a thread pool's
``Condition.wait``, the selector): those are set apart as ``waiting_share``, and every other
share is of the busy samples, the time the server spent computing.

Per route the JSON says (shares of the samples, largest first):
- ``areas``: the innermost Python frame's package, grouped (the model in ONNX Runtime,
  image decoding, numpy, JSON, the HTTP framework, our service code, ...). A C call shows as
  its Python caller, so time inside ``session.run`` is "model (onnxruntime)".
- ``self``: innermost functions; ``self_lines`` the same by line (which C call it was);
- ``total``: functions anywhere on the stack (each sample counts a function once);
- ``largest``: the top area and self function, what "the largest cost" names.
``--native`` adds C/C++ frames (slower sampling; the ONNX Runtime kernels by name).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from common import machine  # bench/ is sys.path[0]
from http_harness import OURS, PAYLOADS, REPO, Payload, payloads, server, wrk
from models_compare import describe
from serve_load import SERVER_ENV, answers

from mnist_mlops.core.fileio import write_json

CONNECTIONS = 8  # as serve_load's middle cell: the worker always has a request waiting
LEAD_S = 1.0  # wrk runs this long before and after the sampling window
TOP = 12
QUICK = {"seconds": 1.0, "rate": 100}
# The innermost frame's file, by its leading path, -> what it is; first match wins.
AREAS = (
    ("onnxruntime/", "model (onnxruntime)"),
    ("mnist_mlops/imaging/", "imaging (ours)"),
    ("PIL/", "image decode (PIL)"),
    ("cv2/", "imaging (OpenCV)"),
    ("numpy/", "numpy"),
    ("serving/", "service code (serving/)"),
    ("mnist_mlops/monitoring/", "monitoring (inference log, feedback)"),
    ("mnist_mlops/inference/", "model glue (mnist_mlops/inference)"),
    ("mnist_mlops/", "library (mnist_mlops)"),
    ("json/", "json"),
    ("base64.py", "base64"),
    ("pydantic", "validation (pydantic)"),
    ("opentelemetry/", "tracing"),
    ("prometheus_client/", "metrics"),
    ("logging/", "logging"),
    ("multipart/", "http framework"),
    ("python_multipart/", "http framework"),
    ("starlette/", "http framework"),
    ("uvicorn/", "http framework"),
    ("bentoml/", "http framework"),
    ("_bentoml_impl/", "http framework"),
    ("_bentoml_sdk/", "http framework"),
    ("anyio/", "http framework"),
    ("h11/", "http framework"),
    ("httptools/", "http framework"),
    ("asyncio/", "http framework"),
)


# Innermost frames that wait for work rather than do it, though py-spy may sample them.
WAITS = (("threading.py", "wait"), ("threading.py", "join"), ("threading.py", "acquire"),
         ("selectors.py", "select"), ("queue.py", "get"))  # fmt: skip


def waiting(name: str, path: str) -> bool:
    return any(path.endswith(file) and name.endswith(fn) for file, fn in WAITS)


def record(pid: int, seconds: float, rate: int, core: int, out: Path, native: bool) -> None:
    """py-spy on ``pid`` and its children for ``seconds``: collapsed stacks in ``out``."""
    # The venv's own py-spy (a dev dependency) when the venv is not on PATH.
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = ["taskset", "-c", str(core), spy, "record", "--pid", str(pid),
               "--subprocesses", "--duration", str(round(seconds)), "--rate", str(rate),
               "--format", "raw", "--output", str(out)]  # fmt: skip
    command += ["--native"] if native else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:  # most often: no permission to ptrace (CAP_SYS_PTRACE)
        raise SystemExit(f"py-spy failed ({done.returncode}):\n{done.stderr[-2000:]}")


def frame_parts(frame: str) -> tuple[str, str]:
    """``"func (path/file.py:12)"`` -> ("func", "path/file.py")."""
    name, _, where = frame.rpartition(" (")
    return (name or frame), where.rstrip(")").rpartition(":")[0] or where.rstrip(")")


def area(path: str) -> str:
    return next((label for prefix, label in AREAS if path.startswith(prefix)), "other")


def summarise(raw: str, top: int) -> dict:
    """Collapsed stacks (``frame;frame;... COUNT``) -> shares by area, function and line."""
    areas, self_fn, self_line, total, processes = (Counter() for _ in range(5))
    samples = idle = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames, process = stack.split(";"), ""
        while frames and frames[0].startswith("process "):  # a worker nests in its parent
            process = frames.pop(0).partition(":")[2].strip('"')[:100]  # the command line
        name, path = frame_parts(frames[-1]) if frames else ("", "")
        if not frames or waiting(name, path):
            idle += n
            continue
        samples += n
        processes[process] += n
        areas[area(path)] += n
        self_fn[f"{name} ({path})"] += n
        self_line[frames[-1]] += n
        for fn in {"{} ({})".format(*frame_parts(f)) for f in frames}:
            total[fn] += n

    def shares(counter: Counter, key: str) -> list[dict]:
        return [{key: k, "share": round(v / samples, 4)} for k, v in counter.most_common(top)]

    out = {"samples": samples, "waiting_share": round(idle / max(samples + idle, 1), 4),
           "areas": shares(areas, "area"), "self": shares(self_fn, "function"),
           "self_lines": shares(self_line, "frame"), "total": shares(total, "function"),
           "processes": shares(processes, "process")}  # fmt: skip
    out["largest"] = {"area": out["areas"][0] if samples else None,
                      "function": out["self"][0] if samples else None}  # fmt: skip
    return out


def profile_route(url: str, pid: int, payload: Payload, args: argparse.Namespace,
                  folder: Path) -> dict:  # fmt: skip
    """One route: warm up, then load it for LEAD + seconds + LEAD while py-spy samples."""
    load_core = 1 if (os.cpu_count() or 1) > 1 else 0  # the server has core 0
    wrk(url, payload, CONNECTIONS, 1, load_core, 0, folder, pid)  # warm-up, discarded
    raw = folder / "stacks.txt"
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(wrk, url, payload, CONNECTIONS, args.seconds + 2 * LEAD_S,
                           load_core, 0, folder, pid)  # fmt: skip
        time.sleep(LEAD_S)
        record(pid, args.seconds, args.rate, load_core, raw, args.native)
        cell = load.result()
    return {"route": payload.route, "load": cell, **summarise(raw.read_text(), args.top)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/model.int8.onnx")
    parser.add_argument("--payloads", default="array,png,batch,npy",
                        help=f"some of {','.join(PAYLOADS)}")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=4.0, help="of sampling, per route")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples a second")
    parser.add_argument("--top", type=int, default=TOP)
    parser.add_argument("--native", action="store_true", help="C/C++ frames too")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK}: proves it runs")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    kinds = args.payloads.split(",")
    if not set(kinds) <= set(PAYLOADS):
        raise SystemExit(f"--payloads: choose from {','.join(PAYLOADS)}")
    model = args.model.resolve()
    (card,) = describe({"model": model}).values()
    routes = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bodies = payloads(folder)
        extra = {k: v.format(home=folder) for k, v in SERVER_ENV["ours"].items()}
        with server(OURS, REPO, model, 0, folder, extra) as (url, pid):
            for kind in kinds:
                if not answers(url, bodies[kind]):
                    raise SystemExit(f"{bodies[kind].route} did not answer 200")
                routes[kind] = profile_route(url, pid, bodies[kind], args, folder)
                area, function = routes[kind]["largest"].values()
                print(f"{kind:6s} {routes[kind]['load']['rps']:7.0f} req/s under py-spy; largest: "
                      + (f"{area['area']} {area['share']:.0%}, {function['function']} "
                         f"{function['share']:.0%}" if area else "none (no busy samples)"),
                      flush=True)  # fmt: skip
    out = args.out or REPO / "bench/results" / f"serve_profile-{card['precision']}.json"
    write_json(out, {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "model": card, "server": "ours", "connections": CONNECTIONS,
        "seconds_per_route": args.seconds, "rate_hz": args.rate, "native": args.native,
        "routes": routes,
    })  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
