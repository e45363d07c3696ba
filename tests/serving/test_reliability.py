"""Reliability of the served process: soak, overload, shutdown, readiness, clean exit.

All against real ``bentoml serve`` processes on 127.0.0.1, each stopped (process
group) when its test ends. No timing is asserted; the load tests count status codes
and memory, and every wait is for something the test checks (an answer count, a
server-side gauge, a status). The soak's halves last ``MNIST_SOAK_REQUESTS`` answers
(default 2,000) and at least ``MNIST_SOAK_SECONDS`` (default 8) each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mnist_mlops.core.fileio import read_json, write_json
from serving.schemas import MAX_BATCH, example_pixels
from support.bento_process import (
    READY_TIMEOUT_S,
    STOPPED,
    Served,
    serving,
    start_server,
    stop_server,
    wait_ready,
)

pytestmark = pytest.mark.slow

# A soak half ends once it has both: enough answers for the allocators to settle, and more
# time than the service keeps each request's timer (its body deadline, 5 s, + 1 s), which
# holds some request state until it fires, so memory also grows with time until then.
SOAK_HALF_REQUESTS = int(os.environ.get("MNIST_SOAK_REQUESTS", "2000"))
SOAK_HALF_SECONDS = float(os.environ.get("MNIST_SOAK_SECONDS", "8"))
SOAK_CONCURRENCY = 32
RSS_SAMPLE_S = 0.5  # how often the soak records the server's memory


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


async def _soak(
    url: str, pid: int, png: bytes
) -> tuple[dict[str, int], list[tuple], int, list[str]]:
    """Closed-loop mixed load (PNG uploads and JSON arrays) for two halves.

    Returns the answers by status, the trace of (seconds, answers so far, server RSS),
    the index in it where the first half ended and the first transport errors.
    """
    counts: dict[str, int] = {}
    errors: list[str] = []  # transport errors, with when they happened, for the report
    trace: list[tuple[float, int, int]] = []
    began = time.monotonic()
    stop = asyncio.Event()
    body = {"pixels": _stroke()}
    # One kept-alive connection per worker, as wrk holds them (httpx keeps 20 by default
    # and closes, then reopens, the rest whenever more than 20 are idle at once).
    limits = httpx.Limits(
        max_connections=SOAK_CONCURRENCY, max_keepalive_connections=SOAK_CONCURRENCY
    )
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker(i: int) -> None:
            n = 0
            while not stop.is_set():
                try:
                    if (i + n) % 2:
                        r = await client.post("/predict", files={"image": ("d.png", png)})
                    else:
                        r = await client.post("/predict_array", json=body)
                    key = str(r.status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                    errors.append(f"{key}: {exc!r} after {time.monotonic() - began:.1f} s")
                counts[key] = counts.get(key, 0) + 1
                n += 1

        async def watch() -> int:
            """Sample RSS; stop the load once the second half has done what the first did."""
            start, half = time.monotonic(), -1
            while True:
                await asyncio.sleep(RSS_SAMPLE_S)  # how often memory is sampled, nothing more
                trace.append((time.monotonic() - start, sum(counts.values()), tree_rss(pid)))
                seconds, answers, _ = trace[-1]
                since = trace[half] if half >= 0 else (0.0, 0, 0)
                enough = answers - since[1] >= SOAK_HALF_REQUESTS
                if enough and seconds - since[0] >= SOAK_HALF_SECONDS:
                    if half >= 0:
                        stop.set()
                        return half
                    half = len(trace) - 1

        workers = [asyncio.create_task(worker(i)) for i in range(SOAK_CONCURRENCY)]
        half = await watch()
        await asyncio.gather(*workers)
    return counts, trace, half, errors


def test_soak_from_cold_start_has_no_errors_and_flat_memory(model_path, tmp_path, digit_png):
    with serving(model_path, tmp_path / "home") as served:  # fresh: no warm-up before
        counts, trace, half, errors = asyncio.run(_soak(served.url, served.proc.pid, digit_png))
        alive = httpx.get(f"{served.url}/readyz", timeout=10).status_code
        server_log = served.log_text() if errors else ""
    at_half, at_end = trace[half][2], trace[-1][2]
    report = {
        "concurrency": SOAK_CONCURRENCY,
        "statuses": counts,
        "requests": sum(counts.values()),
        "half": {"seconds": round(trace[half][0], 1), "answers": trace[half][1]},
        "end": {"seconds": round(trace[-1][0], 1), "answers": trace[-1][1]},
        "rss_mb": [round(r / 2**20, 1) for _, _, r in trace[:: max(len(trace) // 20, 1)]],
        "second_half_growth": round(at_end / at_half - 1, 4),
        "errors": errors[:5],
    }
    print("SOAK", json.dumps(report))
    assert set(counts) == {"200"}, (report, server_log)  # no 5xx, no 429, no transport error
    assert alive == 200
    assert trace[-1][1] - trace[half][1] >= SOAK_HALF_REQUESTS, report
    assert at_end < 1.05 * at_half, report  # a leak shows as growth after the ramp-up


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


def _in_progress(url: str, endpoint: str) -> float:
    """BentoML's gauge of requests the app has started and not yet answered."""
    pattern = rf'bentoml_service_request_in_progress{{endpoint="{endpoint}".*}} (\S+)'
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(m[1]) for m in re.finditer(pattern, text))


def _wait_until(condition, what: str, served: Served, timeout: float = 300) -> None:
    """Poll ``condition`` until true; fail with the server's log if it exits or never is.
    The deadline is a hang guard: the wait ends as soon as the condition holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if served.proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"never {what} (server rc {served.proc.poll()}):\n{served.log_text()}")
        time.sleep(0.05)


async def _half_sent(url: str, body: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A POST /predict_batch whose headers and first half of body are sent, the rest held."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (f"POST /predict_batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    writer.write(head + body[: len(body) // 2])
    await writer.drain()
    return reader, writer


def test_sigterm_lets_requests_in_flight_finish(model_path, tmp_path):
    """SIGTERM while 8 requests are inside the app (their bodies half sent): all 8 answer 200.

    The test holds each body back until the signal is sent, so the requests are in
    flight at that moment however fast this machine answers; the body deadline is
    raised so holding them cannot turn into a 408 on a slow machine.
    """
    body = json.dumps(FULL_BATCH).encode()
    served = start_server(model_path, tmp_path / "home", MNIST_BODY_TIMEOUT_S="600")
    try:
        wait_ready(served)

        async def in_flight() -> list[bytes]:
            streams = [await _half_sent(served.url, body) for _ in range(8)]
            await asyncio.to_thread(
                _wait_until,
                lambda: _in_progress(served.url, "/predict_batch") == 8,
                "8 requests in progress",
                served,
            )
            os.kill(served.proc.pid, signal.SIGTERM)  # the arbiter only, as `docker stop`
            for _, writer in streams:
                writer.write(body[len(body) // 2 :])
                await writer.drain()
            return [await asyncio.wait_for(reader.read(), 60) for reader, _ in streams]

        answers = asyncio.run(in_flight())
        served.proc.wait(timeout=READY_TIMEOUT_S)  # a hang guard, as for start-up
    finally:
        stop_server(served)
    statuses = [a.split(b" ", 2)[1].decode() if a else "closed" for a in answers]
    print("SIGTERM", statuses, "exit", served.proc.returncode)
    assert statuses == ["200"] * 8, statuses
    for answer in answers:
        predictions = json.loads(answer.partition(b"\r\n\r\n")[2])["predictions"]
        assert len(predictions) == MAX_BATCH


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


BAD_MODELS = ("missing", "truncated", "checksum", "missing-metadata")


@pytest.fixture(scope="module")
def bad_model_servers(model_path: Path, tmp_path_factory) -> Iterator[dict[str, Served]]:
    """A server for each broken model, all started at once so their start-ups overlap."""
    folder = tmp_path_factory.mktemp("bad_models")
    servers: dict[str, Served] = {}
    try:
        for kind in BAD_MODELS:
            bad = _broken_model(kind, model_path, folder / kind)
            servers[kind] = start_server(bad, folder / f"{kind}-home")
        yield servers
    finally:
        for served in servers.values():
            stop_server(served)


@pytest.mark.parametrize("kind", BAD_MODELS)
def test_bad_model_answers_readyz_503(kind, bad_model_servers):
    served = bad_model_servers[kind]
    try:
        _check_not_ready(kind, served)
    finally:
        stop_server(served)
    assert "ModelLoadError" in served.log_text() or served.proc.returncode not in (None, 0)


def _check_not_ready(kind: str, served: Served) -> None:
    """The server exits, or its API comes up and keeps answering 503 (never 200)."""
    seen: list[int | str] = []
    deadline = time.monotonic() + READY_TIMEOUT_S  # a hang guard: the API is up long before
    while served.proc.poll() is None:
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
        if time.monotonic() > deadline:
            pytest.fail(f"neither failed nor answered 503: {seen}\n{served.log_text()}")
        time.sleep(0.2)


def _group_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            if os.getpgid(proc.info["pid"]) == pgid:
                members.append(proc.info["pid"])
    return members


def test_no_server_processes_left_behind(model_path, tmp_path):
    # Start and stop one more server (so this test means something when run alone), then
    # check that no process of any server this session stopped is still alive (a server
    # shared by the whole session, still serving, is not among them).
    served = start_server(model_path, tmp_path / "home")
    try:
        wait_ready(served)
        workers = psutil.Process(served.proc.pid).children(recursive=True)
        assert workers, "bentoml serve runs its API in worker processes"
    finally:
        stop_server(served)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    left = {pgid: _group_members(pgid) for pgid in STOPPED}
    assert served.proc.pid in left
    assert {g: m for g, m in left.items() if m} == {}
