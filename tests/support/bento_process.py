"""A real ``bentoml serve`` process for tests: start, wait for /readyz, stop the whole group.

Shared by the serving tests and the pipeline test that serves the built Bento.
Each server runs in its own session (process group), so stopping it also stops
BentoML's worker processes; its log is shown when it fails to become ready.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support import ROOT as REPO

SERVICE = "serving.service:MnistClassifier"
# A hang guard, not a guess at start-up time: the wait ends as soon as the server is ready
# or exits, so only a server that hangs ever waits this long.
READY_TIMEOUT_S = 600
LOAD_FAILED = "ModelLoadError"  # what the service logs when it cannot load its model
LAUNCHED: list[int] = []  # process group ids of every server this test process started
STOPPED: list[int] = []  # ... and of those it has stopped (all their processes gone)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    """A running ``bentoml serve``: its arbiter process, base URL and log file."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


def start_server(
    model_path: Path | None,
    home: Path,
    target: str = SERVICE,
    cwd: Path = REPO,
    **env_extra: str,
) -> Served:
    """Start ``bentoml serve <target>`` on a free loopback port; do not wait for readiness.

    ``target`` is the service (default) or a built Bento's tag; ``model_path`` None leaves
    the service to find its model itself (``MNIST_MODEL_TAG`` / the model store).
    """
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    port = free_port()
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        **env_extra,
    }
    env.pop("MNIST_MODEL_PATH", None)
    if model_path is not None:
        env["MNIST_MODEL_PATH"] = str(model_path)
    command = [sys.executable, "-m", "bentoml", "serve", target,
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return launch(command, cwd, env, log_path, port)


def launch(command: list[str], cwd: Path, env: dict[str, str], log_path: Path, port: int) -> Served:
    """Run ``command`` (which serves on ``port``) in its own session, logging to ``log_path``."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    LAUNCHED.append(proc.pid)  # its own session: the group id is its pid
    return Served(proc, f"http://127.0.0.1:{port}", log_path)


def wait_ready(
    served: Served, timeout: float = READY_TIMEOUT_S, fail_on: str | None = LOAD_FAILED
) -> None:
    """Poll /readyz until 200; fail with the server's log if it exits, times out, or logs
    ``fail_on`` (a model that failed to load: the service stays up answering 503, by design,
    so waiting out the timeout would only hide the cause for ten minutes)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=served.url, timeout=5) as client:
        while True:
            if served.proc.poll() is not None:
                pytest.fail(f"bentoml serve exited with {served.proc.returncode}:\n"
                            f"{served.log_text()}")  # fmt: skip
            if fail_on is not None and fail_on in served.log.read_text(errors="replace"):
                pytest.fail(f"the server logged {fail_on}:\n{served.log_text()}")
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"not ready after {timeout} s:\n{served.log_text()}")
            time.sleep(0.2)


def stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM ``proc``'s process group (started with ``start_new_session``), SIGKILL it
    if ``proc`` has not exited within ``grace_s``; always reaps ``proc``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stop_server(served: Served) -> None:
    """SIGTERM the whole process group, SIGKILL after 15 s; always reaps the arbiter."""
    if served.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(served.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            served.proc.wait(timeout=15)
    # Workers may outlive the arbiter: make sure nothing of the group is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(served.proc.pid, signal.SIGKILL)
    if served.proc.poll() is None:
        served.proc.wait()
    STOPPED.append(served.proc.pid)


@contextlib.contextmanager
def serving(model_path: Path | None, home: Path, **kwargs: str | Path) -> Iterator[Served]:
    """A ready server for the ``with`` block; stopped (process group) on the way out."""
    served = start_server(model_path, home, **kwargs)  # type: ignore[arg-type]
    try:
        wait_ready(served)
        yield served
    finally:
        stop_server(served)
