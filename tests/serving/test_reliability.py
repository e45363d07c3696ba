"""Reliability of the served process: soak, overload, shutdown, readiness.

All against real ``bentoml serve`` processes on 127.0.0.1, each stopped (process
group) when its test ends. No timing is asserted; the load tests count status codes
and memory. ``MNIST_SOAK_SECONDS`` sets the soak's length (default 30 s; the
numbers in the notes come from a 60 s run).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from bento_process import serving, start_server, stop_server, wait_ready
from PIL import Image, ImageDraw

from mnist_mlops.fileio import read_json, write_json
from serving.service import MAX_BATCH

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("MNIST_SOAK_SECONDS", "30"))
SOAK_CONCURRENCY = 32


def _png() -> bytes:
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).line([(40, 30), (160, 30), (90, 170)], fill=0, width=14)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


PIXELS = np.zeros((28, 28), dtype=int)
PIXELS[5:23, 12:16] = 255
FULL_BATCH = {"images": [PIXELS.tolist()] * MAX_BATCH}


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


async def _load(url: str, seconds: float, concurrency: int) -> dict[str, int]:
    """Closed-loop mixed load (PNG uploads and JSON arrays); counts answers by status."""
    png, counts = _png(), {}
    body = {"pixels": PIXELS.tolist()}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        stop = time.monotonic() + seconds

        async def worker(i: int) -> None:
            n = 0
            while time.monotonic() < stop:
                try:
                    if (i + n) % 2:
                        r = await client.post("/predict", files={"image": ("d.png", png)})
                    else:
                        r = await client.post("/predict_array", json=body)
                    key = str(r.status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                counts[key] = counts.get(key, 0) + 1
                n += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return counts


def test_soak_has_no_5xx_and_bounded_memory(model_path, tmp_path):
    with serving(model_path, tmp_path / "home") as served:
        warm = asyncio.run(_load(served.url, min(10.0, SOAK_SECONDS / 3), SOAK_CONCURRENCY))
        rss_before = tree_rss(served.proc.pid)
        counts = asyncio.run(_load(served.url, SOAK_SECONDS, SOAK_CONCURRENCY))
        rss_after = tree_rss(served.proc.pid)
        alive = httpx.get(f"{served.url}/readyz", timeout=10).status_code
    report = {
        "seconds": SOAK_SECONDS,
        "concurrency": SOAK_CONCURRENCY,
        "warmup_statuses": warm,
        "statuses": counts,
        "requests": sum(counts.values()),
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_growth": round(rss_after / rss_before - 1, 4),
    }
    print("SOAK", json.dumps(report))
    statuses = {k for k in counts if k.isdigit()}
    assert statuses == {"200"}, report  # no 5xx, no 429
    # A client may very rarely lose the race of reusing a keep-alive connection the
    # server is closing (seen once in 6,750 requests, with no error in the server's
    # log); more than 1 in 1,000 would be a real fault.
    transport_errors = sum(v for k, v in counts.items() if not k.isdigit())
    assert transport_errors <= report["requests"] / 1000, report
    assert counts["200"] > 0
    assert alive == 200
    # After warm-up, a leak shows as growth; the in-process default grew 3.4% in 30 s
    # and 6.8% in 60 s (the batched layout, with its second process, 11-16%).
    assert rss_after < 1.10 * rss_before, report


def test_burst_beyond_the_concurrency_limit_gets_429_not_timeouts(model_path, tmp_path):
    async def burst(url: str, n: int) -> list[int | str]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:

            async def one() -> int | str:
                try:
                    return (await client.post("/predict_batch", json=FULL_BATCH)).status_code
                except httpx.HTTPError as exc:
                    return type(exc).__name__

            return await asyncio.gather(*(one() for _ in range(n)))

    with serving(model_path, tmp_path / "home", MNIST_MAX_CONCURRENCY="4") as served:
        statuses = asyncio.run(burst(served.url, 64))
        after = httpx.post(f"{served.url}/predict_array", json={"pixels": PIXELS.tolist()})
    summary = {str(s): statuses.count(s) for s in set(statuses)}
    print("BURST", json.dumps(summary))
    assert set(statuses) <= {200, 429, 503}, summary
    assert 200 in statuses and 429 in statuses, summary
    assert after.status_code == 200, after.text


@pytest.mark.parametrize(
    "batching",
    [
        "off",
        pytest.param(
            "on",
            marks=pytest.mark.xfail(
                reason="MNIST_BATCHING=on: BentoML 1.4's arbiter stops the model worker "
                "together with the API worker, so requests the API is still handling lose "
                "their model connection (500); known gap, hence batching is off by default",
                strict=False,
            ),
        ),
    ],
)
def test_sigterm_lets_requests_in_flight_finish(model_path, tmp_path, batching):
    served = start_server(model_path, tmp_path / "home", MNIST_BATCHING=batching)
    try:
        wait_ready(served)

        async def in_flight() -> list[int | str]:
            async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:

                async def one() -> int | str:
                    try:
                        return (await client.post("/predict_batch", json=FULL_BATCH)).status_code
                    except httpx.HTTPError as exc:
                        return type(exc).__name__

                tasks = [asyncio.ensure_future(one()) for _ in range(8)]
                await asyncio.sleep(0.3)  # let them reach the server
                os.kill(served.proc.pid, signal.SIGTERM)  # the arbiter only, as `docker stop`
                return await asyncio.gather(*tasks)

        statuses = asyncio.run(in_flight())
        served.proc.wait(timeout=60)
    finally:
        stop_server(served)
    print("SIGTERM", statuses, "exit", served.proc.returncode)
    assert statuses == [200] * 8, statuses


def _broken_model(kind: str, model_path: Path, folder: Path) -> Path:
    folder.mkdir()
    target = folder / "model.onnx"
    meta = read_json(model_path.with_name("model.json"))
    if kind == "missing":
        write_json(folder / "model.json", meta)
        return target
    data = model_path.read_bytes()
    target.write_bytes(data[: len(data) // 2] if kind == "truncated" else data)
    if kind == "checksum":
        meta = {**meta, "sha256": "0" * 64}
    write_json(folder / "model.json", meta)
    if kind == "missing-metadata":
        (folder / "model.json").unlink()
    return target


@pytest.mark.parametrize(
    ("kind", "batching"),
    [
        ("missing", "off"),
        ("truncated", "off"),
        ("checksum", "off"),
        ("missing-metadata", "off"),
        # The batched layout's model worker crash-loops (~45 s per case): one case for it.
        ("checksum", "on"),
    ],
)
def test_bad_model_fails_startup_or_readyz_503(kind, batching, model_path, tmp_path):
    bad = _broken_model(kind, model_path, tmp_path / "model")
    served = start_server(bad, tmp_path / "home", MNIST_BATCHING=batching)
    seen: list[int | str] = []
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and served.proc.poll() is None:
            try:
                status = httpx.get(f"{served.url}/readyz", timeout=10).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            seen.append(status)
            assert status != 200, f"a {kind} model became ready:\n{served.log_text()}"
            if seen.count(503) >= 3:  # the API is up and keeps saying "not ready"
                predict = httpx.post(
                    f"{served.url}/predict_array", json={"pixels": PIXELS.tolist()}, timeout=30
                )
                assert predict.status_code >= 500, predict.text
                break
            time.sleep(0.5)
        else:
            if served.proc.poll() is None:
                pytest.fail(f"neither failed nor answered 503: {seen}\n{served.log_text()}")
    finally:
        stop_server(served)
    assert "ModelLoadError" in served.log_text() or served.proc.returncode not in (None, 0)


def test_no_server_processes_left_behind(tmp_path):
    # Every test above stops its process group; nothing of ours may still be serving.
    mine = [
        p.info
        for p in psutil.process_iter(["pid", "cmdline"])
        if p.info["cmdline"] and str(tmp_path.parent) in " ".join(p.info["cmdline"])
    ]
    assert mine == []
