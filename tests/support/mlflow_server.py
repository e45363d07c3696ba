"""A real ``mlflow server`` on a real PostgreSQL, as ``make mlflow-server`` starts it.

For the tests whose point is a shared tracking store: concurrent runs, queued experiments,
the corrections store on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import ROOT
from support.bento_process import free_port, stop_group

# A hang guard: the wait for the server ends as soon as it answers or the script exits.
SERVER_HANG_S = 600


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: its tracking URI and the PostgreSQL database behind it."""

    uri: str
    database: str  # postgresql:// URI of the backend store, for checking rows directly
    folder: Path  # MLFLOW_SERVER_DIR: pgdata/, artifacts/, server.log


@contextlib.contextmanager
def mlflow_server(extra_env: Mapping[str, str] | None = None) -> Iterator[MlflowServer]:
    """scripts/mlflow_server.sh on free loopback ports for the ``with`` block, stopped (with
    its PostgreSQL) and its folder removed on the way out; ``extra_env`` adds to the script's
    environment (``MLFLOW_AUTH=1`` and the admin's password: MLflow's basic auth)."""
    import httpx

    # As root, PostgreSQL runs as the postgres user: the folder must be reachable by it.
    folder = Path(tempfile.mkdtemp(prefix="mnist-mlflow-server-"))
    folder.chmod(0o755)
    port, pgport = free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_SERVER_DIR": str(folder),
        "MLFLOW_PORT": str(port),
        "PGPORT": str(pgport),
        **(extra_env or {}),
    }
    env.pop("MLFLOW_BACKEND_STORE_URI", None)
    with open(folder / "server.log", "wb") as log:
        proc = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "mlflow_server.sh")],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_HANG_S
        while True:
            text = (folder / "server.log").read_text(errors="replace")[-4000:]
            if proc.poll() is not None:
                pytest.fail(f"mlflow_server.sh exited with {proc.returncode}:\n{text}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after {SERVER_HANG_S} s:\n{text}")
            time.sleep(0.5)
        yield MlflowServer(uri, f"postgresql://mlflow@127.0.0.1:{pgport}/mlflow", folder)
    finally:
        stop_group(proc, grace_s=60)  # on SIGTERM the script's trap stops PostgreSQL
        pid_file = folder / "pgdata" / "postmaster.pid"
        if pid_file.exists():  # the script was killed before its trap ran
            with contextlib.suppress(ProcessLookupError, ValueError):
                postmaster = int(pid_file.read_text().split()[0])
                os.kill(postmaster, signal.SIGINT)  # fast shutdown
                _wait_gone(postmaster, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_gone(pid: int, timeout: float) -> None:
    """Until process ``pid`` has exited (it is not our child: no wait() for it)."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
        psutil.Process(pid).wait(timeout)
