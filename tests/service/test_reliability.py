"""Reliability of the served process: soak, overload, shutdown, readiness, clean exit.

All against real ``bentoml serve`` processes on 127.0.0.1, each stopped (process
group) when its test ends. No timing is asserted; the load tests count status codes
and memory. ``MNIST_SOAK_SECONDS`` sets the soak's length (default 30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest
from bento_process import LAUNCHED, serving, start_server, stop_server, wait_ready

from mnist_mlops.core.fileio import read_json, write_json
from serving.schemas import MAX_BATCH, example_pixels

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("MNIST_SOAK_SECONDS", "30"))
SOAK_CONCURRENCY = 32


def _stroke() -> list[list[int]]:
    return example_pixels()


FULL_BATCH = {"images": [example_pixels()] * MAX_BATCH}


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


async def _load(url: str, seconds: float, concurrency: int, png: bytes) -> dict[str, int]:
    """Closed-loop mixed load (PNG uploads and JSON arrays); counts answers by status."""
    counts: dict[str, int] = {}
    body = {"pixels": _stroke()}
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


async def _sample_rss(pid: int, samples: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(tree_rss(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _soak(url: str, pid: int, png: bytes) -> tuple[dict[str, int], list[int]]:
    samples: list[int] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(pid, samples, stop))
    counts = await _load(url, SOAK_SECONDS, SOAK_CONCURRENCY, png)
    stop.set()
    await sampler
    return counts, samples


def test_soak_from_cold_start_has_no_errors_and_flat_memory(model_path, tmp_path, digit_png):
    with serving(model_path, tmp_path / "home") as served:  # fresh: no warm-up before
        counts, samples = asyncio.run(_soak(served.url, served.proc.pid, digit_png))
        alive = httpx.get(f"{served.url}/readyz", timeout=10).status_code
    half = samples[len(samples) // 2]
    report = {
        "seconds": SOAK_SECONDS,
        "concurrency": SOAK_CONCURRENCY,
        "statuses": counts,
        "requests": sum(counts.values()),
        "rss_mb_each_second": [round(r / 2**20, 1) for r in samples],
        "second_half_growth": round(samples[-1] / half - 1, 4),
    }
    print("SOAK", json.dumps(report))
    assert set(counts) == {"200"}, report  # no 5xx, no 429, no transport error
    assert alive == 200
    assert len(samples) >= 4, report
    assert samples[-1] < 1.05 * half, report  # a leak shows as growth after the ramp-up


def test_burst_beyond_the_concurrency_limit_gets_429_not_timeouts(
    model_path, tmp_path, make_digit, encode_image
):
    # Large uploads (over INLINE_DECODE_PIXELS) wait for the two decoding threads, so
    # requests pile up past the limit; small ones decode in the loop and never wait.
    digit_png = encode_image(make_digit(size=(1200, 900), box=(100, 80, 500, 800), width=60))

    async def burst(url: str, n: int) -> list[int | str]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:

            async def one() -> int | str:
                try:
                    files = {"image": ("d.png", digit_png, "image/png")}
                    return (await client.post("/predict", files=files)).status_code
                except httpx.HTTPError as exc:
                    return type(exc).__name__

            return await asyncio.gather(*(one() for _ in range(n)))

    with serving(model_path, tmp_path / "home", MNIST_MAX_CONCURRENCY="4") as served:
        statuses = asyncio.run(burst(served.url, 64))
        after = httpx.post(f"{served.url}/predict_array", json={"pixels": _stroke()})
    summary = {str(s): statuses.count(s) for s in set(statuses)}
    print("BURST", json.dumps(summary))
    assert set(statuses) <= {200, 429, 503}, summary
    assert 200 in statuses and 429 in statuses, summary
    assert after.status_code == 200, after.text


def test_sigterm_lets_requests_in_flight_finish(model_path, tmp_path):
    served = start_server(model_path, tmp_path / "home")
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


@pytest.mark.parametrize("kind", ["missing", "truncated", "checksum", "missing-metadata"])
def test_bad_model_answers_readyz_503(kind, model_path, tmp_path):
    bad = _broken_model(kind, model_path, tmp_path / "model")
    served = start_server(bad, tmp_path / "home")
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
                    f"{served.url}/predict_array", json={"pixels": _stroke()}, timeout=30
                )
                assert predict.status_code == 503, predict.text
                assert "model not loaded" in predict.json()["error"]
                break
            time.sleep(0.5)
        else:
            if served.proc.poll() is None:
                pytest.fail(f"neither failed nor answered 503: {seen}\n{served.log_text()}")
    finally:
        stop_server(served)
    assert "ModelLoadError" in served.log_text() or served.proc.returncode not in (None, 0)


def _group_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            if os.getpgid(proc.info["pid"]) == pgid:
                members.append(proc.info["pid"])
    return members


def test_no_server_processes_left_behind(model_path, tmp_path):
    # Start and stop one more server (so this test means something when run alone), then
    # check that no process of any server this session started is still alive.
    served = start_server(model_path, tmp_path / "home")
    try:
        wait_ready(served)
        workers = psutil.Process(served.proc.pid).children(recursive=True)
        assert workers, "bentoml serve runs its API in worker processes"
    finally:
        stop_server(served)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    left = {pgid: _group_members(pgid) for pgid in LAUNCHED}
    assert served.proc.pid in left
    assert {g: m for g, m in left.items() if m} == {}
