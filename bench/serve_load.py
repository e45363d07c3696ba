"""HTTP load benchmark: the BentoML service (batching on and off) against a bare baseline.

Starts each server in turn on 127.0.0.1 (never two at once: the box has 2 cores),
drives it from this process with an asyncio + aiohttp load generator, and stops it.

* Closed loop: C clients each send, wait for the answer, send again, for
  ``--seconds`` per cell (after a warm-up), at C = 1, 8, 32, 64. The best req/s
  over C is the server's *peak*.
* Open loop at half the peak: requests are *scheduled* at a fixed rate of
  0.5 x peak, whether or not earlier ones have come back, and each latency is
  measured from its scheduled start, so a stalled server cannot hide its queue
  (no coordinated omission).

Payloads: one PNG upload (a drawn "7", 200x200) to /predict, and one 28x28 JSON
pixel array to /predict_array. Prints a table and writes JSON::

    python bench/serve_load.py                       # ~4 min, writes bench/results/serve_load.json
    python bench/serve_load.py --seconds 2 --concurrency 1 8   # quicker look

Targets (issue 4): BentoML peak >= 0.5x the baseline's; p99 <= 25 ms at half of its
peak; adaptive batching >= 2x the req/s of batching off at saturation (C = 64).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 90


@dataclass
class Cell:
    """One server x payload x load setting."""

    server: str
    payload: str
    mode: str  # "closed" (C clients) or "open" (fixed arrival rate)
    concurrency: int = 0
    target_rps: float = 0.0
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- payloads
def digit_png() -> bytes:
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).line([(40, 30), (160, 30), (90, 170)], fill=0, width=14)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def digit_array() -> bytes:
    pixels = np.zeros((28, 28))
    pixels[5:23, 12:16] = 255.0
    return json.dumps({"pixels": pixels.astype(int).tolist()}).encode()


def make_request(session: aiohttp.ClientSession, payload: str, png: bytes, array: bytes):
    if payload == "png":
        form = aiohttp.FormData()
        form.add_field("image", png, filename="digit.png", content_type="image/png")
        return session.post("/predict", data=form)
    return session.post("/predict_array", data=array, headers={"Content-Type": "application/json"})


async def send(session: aiohttp.ClientSession, payload: str, png: bytes, array: bytes) -> str:
    """One request, read to the end: its HTTP status, or the client error's name."""
    try:
        async with make_request(session, payload, png, array) as resp:
            await resp.read()
            return str(resp.status)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return type(exc).__name__


# --------------------------------------------------------------------------- load
async def closed_loop(base: str, payload: str, concurrency: int, seconds: float, warmup: float):
    png, array = digit_png(), digit_array()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop = measure_from + seconds

        async def client() -> None:
            while (now := time.perf_counter()) < stop:
                status = await send(session, payload, png, array)
                done = time.perf_counter()
                if now >= measure_from and done <= stop:
                    latencies.append(done - now)
                    statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, statuses, seconds


async def open_loop(base: str, payload: str, rate: float, seconds: float, warmup: float):
    png, array = digit_png(), digit_array()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:

        async def one(scheduled: float, measured: bool) -> None:
            status = await send(session, payload, png, array)
            if measured:
                latencies.append(time.perf_counter() - scheduled)
                statuses[status] = statuses.get(status, 0) + 1

        start = time.perf_counter()
        total = int((warmup + seconds) * rate)
        warm = int(warmup * rate)
        tasks = []
        for i in range(total):
            scheduled = start + i / rate
            if (delay := scheduled - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(scheduled, i >= warm)))
        await asyncio.gather(*tasks)
    return latencies, statuses, seconds


def summarise(cell: Cell, latencies: list[float], statuses: dict[str, int], seconds: float):
    ms = np.asarray(latencies) * 1000.0
    cell.requests = len(ms)
    cell.rps = round(statuses.get("200", 0) / seconds, 1)
    if len(ms):
        cell.p50_ms = round(float(np.percentile(ms, 50)), 2)
        cell.p99_ms = round(float(np.percentile(ms, 99)), 2)
        cell.max_ms = round(float(ms.max()), 2)
    cell.statuses = dict(sorted(statuses.items()))
    return cell


# --------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(name: str, model: Path, home: Path) -> Iterator[str]:
    """Start server ``name`` on a free loopback port; always stop its process group."""
    port = free_port()
    env = {
        **os.environ,
        "MNIST_MODEL_PATH": str(model),
        "BENTOML_HOME": str(home / name),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    if name == "baseline":
        cmd = [
            sys.executable,
            str(REPO / "bench" / "baseline_server.py"),
            "--model",
            str(model),
            "--port",
            str(port),
        ]
    else:
        env["MNIST_BATCHING"] = "on" if name == "bentoml-batching" else "off"
        cmd = [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "serving.service:MnistClassifier",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    log_path = home / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _ready(base):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _ready(base: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


# --------------------------------------------------------------------------- main
def bench_server(name: str, base: str, args: argparse.Namespace) -> list[Cell]:
    cells = []
    for payload in args.payloads:
        closed = []
        for c in args.concurrency:
            lat, st, secs = asyncio.run(closed_loop(base, payload, c, args.seconds, args.warmup))
            cell = summarise(Cell(name, payload, "closed", concurrency=c), lat, st, secs)
            print(_row(cell), flush=True)
            closed.append(cell)
        peak = max(cell.rps for cell in closed)
        rate = max(1.0, 0.5 * peak)
        lat, st, secs = asyncio.run(open_loop(base, payload, rate, args.seconds, args.warmup))
        cell = summarise(Cell(name, payload, "open", target_rps=round(rate, 1)), lat, st, secs)
        print(_row(cell), flush=True)
        cells += [*closed, cell]
    return cells


HEADER = (
    f"{'server':<18} {'payload':<7} {'load':<12} {'req/s':>8} {'p50 ms':>8} "
    f"{'p99 ms':>8} {'max ms':>8}  statuses"
)


def _row(cell: Cell) -> str:
    load = f"C={cell.concurrency}" if cell.mode == "closed" else f"{cell.target_rps:g}/s open"
    return (
        f"{cell.server:<18} {cell.payload:<7} {load:<12} {cell.rps:>8.1f} "
        f"{cell.p50_ms:>8.2f} {cell.p99_ms:>8.2f} {cell.max_ms:>8.2f}  {cell.statuses}"
    )


def verdicts(cells: list[Cell]) -> dict[str, dict]:
    """The three targets, per payload, from the cells of this run."""

    def peak(server: str, payload: str) -> float:
        return max(
            (
                c.rps
                for c in cells
                if c.server == server and c.payload == payload and c.mode == "closed"
            ),
            default=0.0,
        )

    def at(server: str, payload: str, concurrency: int) -> float:
        return next(
            (
                c.rps
                for c in cells
                if c.server == server
                and c.payload == payload
                and c.mode == "closed"
                and c.concurrency == concurrency
            ),
            0.0,
        )

    out: dict[str, dict] = {}
    for payload in sorted({c.payload for c in cells}):
        base = peak("baseline", payload)
        on = peak("bentoml-batching", payload)
        cmax = max(c.concurrency for c in cells if c.mode == "closed")
        sat_on, sat_off = (
            at("bentoml-batching", payload, cmax),
            at("bentoml-no-batch", payload, cmax),
        )
        half = next(
            (
                c
                for c in cells
                if c.server == "bentoml-batching" and c.payload == payload and c.mode == "open"
            ),
            None,
        )
        out[payload] = {
            "throughput_vs_baseline": {
                "ratio": round(on / base, 2) if base else None,
                "target": ">= 0.5",
                "met": bool(base) and on / base >= 0.5,
            },
            "p99_at_half_peak_ms": {
                "value": half.p99_ms if half else None,
                "target": "<= 25",
                "met": bool(half) and half.p99_ms <= 25.0,
            },
            "batching_speedup_at_saturation": {
                "concurrency": cmax,
                "ratio": round(sat_on / sat_off, 2) if sat_off else None,
                "target": ">= 2",
                "met": bool(sat_off) and sat_on / sat_off >= 2.0,
            },
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "model.onnx")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--payloads", nargs="+", default=["png", "array"])
    parser.add_argument(
        "--servers", nargs="+", default=["baseline", "bentoml-batching", "bentoml-no-batch"]
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serve_load.json")
    args = parser.parse_args()

    cells: list[Cell] = []
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        for name in args.servers:
            with running(name, args.model.resolve(), Path(tmp)) as base:
                cells += bench_server(name, base, args)
    result = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "model": str(args.model),
        },
        "cells": [asdict(c) for c in cells],
        "targets": verdicts(cells),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["targets"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
