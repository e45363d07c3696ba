"""What the HTTP benchmarks share: the payloads, a server on a pinned core, a wrk run.

Used by bench/serve_load.py, bench/serve_bulk.py and bench/serve_ab.py. Servers run in
their own process group, pinned with ``taskset``; ``wrk`` runs pinned to another core and
reports its own numbers through a Lua ``done()`` hook; the server's CPU time per request
is read from its process tree (psutil), which barely moves when neighbours share the core.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import psutil
from common import REPO, random_images

sys.path[:0] = [str(REPO / "src"), str(REPO)]  # run as a script from anywhere

from serving.schemas import MAX_BATCH, example_pixels  # noqa: E402

OURS = [sys.executable, "-m", "bentoml", "serve", "serving.service:MnistClassifier",
        "--host", "127.0.0.1", "--port"]  # fmt: skip
BATCH = MAX_BATCH  # images per batch request: the service's bound
PAYLOADS = ("array", "png", "batch", "npy", "npy-bin")  # the keys of payloads()
# Prints wrk's own numbers as one JSON line; `pace_ms` (global) turns on pacing.
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "%(content_type)s"
if "%(accept)s" ~= "" then wrk.headers["Accept"] = "%(accept)s" end
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


class Payload(NamedTuple):
    """One kind of request: where it goes, its body (a file) and what it asks back."""

    route: str
    content_type: str
    body: Path
    images: int  # per request
    accept: str = ""  # the Accept header, when not the default answer (JSON)


def payloads(folder: Path) -> dict[str, Payload]:
    """name -> the request wrk sends over and over ("npy-bin": "npy" answered as .npy)."""
    from PIL import Image, ImageDraw

    array = folder / "array.json"
    array.write_text(json.dumps({"pixels": example_pixels()}))
    batch = folder / "batch.json"
    batch.write_text(json.dumps({"images": batch_pixels().tolist()}))
    npy = folder / "batch.npy"
    np.save(npy, batch_pixels())
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
        "array": Payload("/predict_array", "application/json", array, 1),
        "png": Payload("/predict", f"multipart/form-data; boundary={boundary}", form, 1),
        "batch": Payload("/predict_batch", "application/json", batch, BATCH),
        "npy": Payload("/predict_npy", "application/x-npy", npy, BATCH),
        "npy-bin": Payload("/predict_npy", "application/x-npy", npy, BATCH, "application/x-npy"),
    }


def batch_pixels() -> np.ndarray:
    """BATCH different 28x28 images, 0..255 integers (seeded): (BATCH, 28, 28) uint8."""
    return random_images(BATCH)


def checkout(spec: str) -> tuple[str, Path]:
    """``NAME=DIR`` -> (NAME, DIR), DIR a checkout of this project (serving/service.py)."""
    name, _, folder = spec.partition("=")
    if not (Path(folder) / "serving" / "service.py").is_file():
        raise SystemExit(f"{spec}: no serving/service.py under {folder}")
    return name, Path(folder).resolve()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(
    command: list[str], tree: Path, model: Path, core: int, home: Path,
    extra: dict[str, str] | None = None,
) -> Iterator[tuple[str, int]]:  # fmt: skip
    """Start ``command`` in checkout ``tree``, pinned to ``core``, with ``extra`` in its
    environment; yield (URL, pid) once /readyz answers; stop its process group."""
    port = free_port()
    command = [c.format(model=model) for c in command] + [str(port)]
    env = {**os.environ, "MNIST_MODEL_PATH": str(model), "BENTOML_HOME": str(home),
           "BENTOML_DO_NOT_TRACK": "true", "PYTHONPATH": f"{tree / 'src'}:{tree}",
           **(extra or {})}  # fmt: skip
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
                log.flush()  # the folder may be a temporary one, gone after the exit: say why
                tail = (home / "server.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"{command} did not start; the end of its log:\n{tail}")
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


def wrk(url: str, payload: Payload, connections: int, seconds: float,
        core: int, pace_ms: float, folder: Path, pid: int) -> dict:  # fmt: skip
    route, content_type, body, images, accept = payload
    script = folder / "load.lua"
    script.write_text(LUA % {"content_type": content_type, "body": body, "pace_ms": pace_ms,
                             "accept": accept})  # fmt: skip
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
