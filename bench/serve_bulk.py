"""Bulk scoring over HTTP as a Python user does it: /predict_batch (JSON) vs /predict_npy.

bench/serve_load.py measures the server alone (wrk sends a prepared body). A user's
client also pays for its format: ``json.dumps`` of N x 784 numbers and ``json.loads`` of
the answer, or ``numpy.save`` of one array. Here one Python client (httpx, one kept-alive
connection, pinned to one core) sends batches of real-looking pixels to our service
(pinned to the other core) in a closed loop, encoding each request and decoding each
answer, and counts images/s per route and batch size. ONNX Runtime called directly on
the same model, in the same run and on the server's core, is the ceiling::

    python bench/serve_bulk.py --model models/model.onnx            # 10 s a cell
    python bench/serve_bulk.py --model models/model.onnx --seconds 3  # 3 s a cell
    python bench/serve_bulk.py --quick --out /tmp/x.json  # a fraction of a second: runs?

Prints a table (npy / JSON ratio per batch size) and writes bench/results/serve_bulk.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
from common import machine, random_images  # bench/ is sys.path[0]
from http_harness import OURS, REPO, cpu_seconds, server

from mnist_mlops.core.fileio import write_json
from mnist_mlops.inference.session import inference_session
from serving.schemas import MAX_BATCH

BATCHES = (16, 64, MAX_BATCH)
SERVER_CORE, CLIENT_CORE = 0, 1


def as_json(batch: np.ndarray) -> tuple[bytes, str]:
    return json.dumps({"images": batch.tolist()}).encode(), "application/json"


def as_npy(batch: np.ndarray) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    np.save(buffer, batch)
    return buffer.getvalue(), "application/x-npy"


ROUTES: dict[str, tuple[str, Callable[[np.ndarray], tuple[bytes, str]]]] = {
    "json": ("/predict_batch", as_json),
    "npy": ("/predict_npy", as_npy),
}


def closed_loop(url: str, pid: int, route: str, batch: np.ndarray, seconds: float) -> dict:
    """Encode, send, decode, repeat for ``seconds``: images/s and server CPU per image."""
    path, encode = ROUTES[route]
    done = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post(path, content=encode(batch)[0], headers={"content-type": encode(batch)[1]})
        cpu, start = cpu_seconds(pid), time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            body, media_type = encode(batch)
            answer = client.post(path, content=body, headers={"content-type": media_type})
            answer.raise_for_status()
            assert len(answer.json()["predictions"]) == len(batch)
            done += len(batch)
        cpu = cpu_seconds(pid) - cpu
    return {"images_per_s": done / elapsed, "server_cpu_us_per_image": 1e6 * cpu / max(done, 1)}


def direct_rate(model: Path, seconds: float) -> float:
    """ONNX Runtime alone on MAX_BATCH-image float32 chunks, on the server's core: images/s."""
    os.sched_setaffinity(0, {SERVER_CORE})
    try:
        session = inference_session(model)
        chunk = random_images(MAX_BATCH).astype(np.float32)
        name = session.get_inputs()[0].name
        session.run(None, {name: chunk})
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            session.run(None, {name: chunk})
            done += len(chunk)
        return done / elapsed
    finally:
        os.sched_setaffinity(0, {CLIENT_CORE})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/model.onnx")
    parser.add_argument("--seconds", type=float, default=10.0, help="per cell")
    parser.add_argument("--quick", action="store_true", help="0.3 s a cell: proves it runs")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/serve_bulk.json")
    args = parser.parse_args()
    seconds = 0.3 if args.quick else args.seconds
    os.sched_setaffinity(0, {CLIENT_CORE})
    results: dict[str, dict[str, dict]] = {}
    model = args.model.resolve()
    with (
        tempfile.TemporaryDirectory() as tmp,
        server(OURS, REPO, model, SERVER_CORE, Path(tmp)) as (url, pid),
    ):
        for size in BATCHES:
            for route in ROUTES:
                cell = closed_loop(url, pid, route, random_images(size), seconds)
                results.setdefault(str(size), {})[route] = cell
                print(
                    f"  batch {size:3d} {route:4s} {cell['images_per_s']:8.0f} images/s", flush=True
                )
    direct = direct_rate(args.model.resolve(), seconds)
    head = "batch | JSON images/s | npy images/s | npy/JSON | server CPU/image JSON, npy"
    lines = [head, "-" * len(head)]
    for size, cells in results.items():
        j, n = cells["json"], cells["npy"]
        ratio = n["images_per_s"] / j["images_per_s"]
        cpu = f"{j['server_cpu_us_per_image']:7.0f} us, {n['server_cpu_us_per_image']:4.0f} us"
        lines.append(f"{size:>5s} | {j['images_per_s']:13.0f} | {n['images_per_s']:12.0f} | "
                     f"{ratio:7.1f}x | {cpu}")  # fmt: skip
    lines.append(f"ONNX Runtime alone, {MAX_BATCH}-image chunks: {direct:.0f} images/s")
    print("\n".join(lines))
    write_json(args.out, {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),  # its load average: other users share the cores
        "seconds_per_cell": seconds, "results": results, "direct_images_per_s": direct,
        "ratios": {s: c["npy"]["images_per_s"] / c["json"]["images_per_s"]
                   for s, c in results.items()},
    })  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
