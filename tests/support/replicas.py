"""Replicas of the serving image behind a real nginx on loopback, as docs/replicas.md runs them.

deploy/nginx/replicas.sh starts the containers (host network, one port each, the shared
inference log folder mounted, one env file for all) and writes nginx's replicas.conf;
nginx runs as a child of the test with its own prefix (deploy/nginx/nginx.conf, only the
listen port changed). The replicas, nginx and the script run pinned to core 0 (taskset:
what podman starts inherits it) so a load generator can have core 1 to itself.
Containers are named ``mnist-replica-<port>`` and removed on the way out, whatever happened.
Needs nginx, podman and taskset (scripts/install_system_packages.sh).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import ROOT
from support.bento_process import free_port, stop_group
from support.serving_image import podman
from support.tools import need

SCRIPT = ROOT / "deploy" / "nginx" / "replicas.sh"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
LISTEN = "listen 127.0.0.1:8080;"  # the port deploy/nginx/nginx.conf listens on
PREFIX = "mnist-replica"  # the script's default container names: PREFIX-PORT
UID = 10001  # the image's user: it writes the shared log folder
SERVER_CORE = "0"
SCRIPT_HANG_S = 900  # `up` or `roll`: each replica start ends at /readyz or the script fails
NGINX_HANG_S = 30


@dataclass(frozen=True)
class Deployment:
    """Running replicas and the nginx in front: where each listens, the shared folder."""

    url: str  # nginx
    ports: tuple[int, ...]  # one replica each, on 127.0.0.1
    home: Path  # nginx's prefix (nginx.conf, replicas.conf, error.log) and the env file
    log_dir: Path  # the inference log folder every replica writes

    @property
    def replica_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def names(self) -> list[str]:
        return [f"{PREFIX}-{port}" for port in self.ports]

    def containers(self) -> dict[str, tuple[str, str]]:
        """Container name -> (its id, its image's name)."""
        out = {}
        for name in self.names():
            found = podman("inspect", "--format", "{{.Id}} {{.ImageName}}", name).stdout.split()
            out[name] = (found[0], found[1])
        return out

    def script(
        self, *args: str, check: bool = True, timeout: float = SCRIPT_HANG_S
    ) -> subprocess.CompletedProcess:
        """deploy/nginx/replicas.sh ARGS for this deployment, pinned to the servers' core;
        fails the test if it fails and ``check``."""
        env = {**os.environ, "MNIST_NGINX_DIR": str(self.home),
               "MNIST_REPLICA_ENV": str(self.home / "replica.env"),
               "MNIST_REPLICA_LOG_DIR": str(self.log_dir)}  # fmt: skip
        proc = subprocess.run(
            ["taskset", "-c", SERVER_CORE, "bash", str(SCRIPT), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"replicas.sh {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def nginx_errors(self, whole: bool = False) -> str:
        """nginx's error.log: its end, or all of it if ``whole``."""
        return nginx_errors(self.home, whole)


def nginx_errors(home: Path, whole: bool = False) -> str:
    """The error.log of the nginx whose prefix is ``home``: its end, or all of it."""
    path = home / "error.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return text if whole else text[-4000:]


@contextlib.contextmanager
def deployment(image: str, replicas: int, settings: Mapping[str, str]) -> Iterator[Deployment]:
    """``replicas`` containers of ``image`` with ``settings`` in their environment, behind
    nginx, for the ``with`` block; every container and nginx stopped on the way out."""
    need("nginx", "taskset", "curl")  # before any container starts
    # Not under pytest's tmp (mode 700): nginx's workers and the image's user reach in here.
    home = Path(tempfile.mkdtemp(prefix="mnist-replicas-"))
    home.chmod(0o755)
    log_dir = home / "inference"
    log_dir.mkdir()
    os.chown(log_dir, UID, UID)
    (home / "replica.env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    port = free_port()
    served = Deployment(
        f"http://127.0.0.1:{port}", tuple(free_port() for _ in range(replicas)), home, log_dir
    )
    try:
        served.script("up", image, *map(str, served.ports))
        with nginx_front(home, port):
            yield served
    finally:
        for name in served.names():
            podman("rm", "-f", "-v", "--time", "0", name, check=False)
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def nginx_front(home: Path, port: int) -> Iterator[None]:
    """nginx with deploy/nginx/nginx.conf (only the port changed), prefix ``home`` (which
    holds replicas.conf), listening on ``port`` for the ``with`` block; stopped after."""
    need("nginx", "taskset")
    config = NGINX_CONF.read_text()
    assert LISTEN in config, f"{NGINX_CONF} no longer says {LISTEN!r}: update support/replicas.py"
    (home / "nginx.conf").write_text(config.replace(LISTEN, f"listen 127.0.0.1:{port};"))
    nginx = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, "nginx", "-p", str(home), "-c", str(home / "nginx.conf"),
         "-e", str(home / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_listening(nginx, port, home)
        yield
    finally:
        stop_group(nginx, grace_s=30)


def _wait_listening(nginx: subprocess.Popen, port: int, home: Path) -> None:
    """Until nginx accepts connections on ``port``; fails the test if it exits first."""
    deadline = time.monotonic() + NGINX_HANG_S
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if nginx.poll() is not None or time.monotonic() > deadline:
            state = f"exited with {nginx.returncode}" if nginx.poll() is not None else "not up"
            pytest.fail(f"nginx {state} (listening on {port}?):\n{nginx_errors(home)}")
        time.sleep(0.1)


INDEX_HANG_S = 60  # the writer indexes a request within its flush interval; this is a guard


def wait_indexed(store_uri: str, request_id: str, hang_s: float = INDEX_HANG_S) -> None:
    """Until the shared store's index of logged requests holds ``request_id``: then any
    replica accepts its correction (whichever replica's writer logged it)."""
    import psycopg

    from mnist_mlops.monitoring.inference_log import request_key

    query = "SELECT 1 FROM mnist_logged_requests WHERE request_id IN (%s, %s)"
    deadline = time.monotonic() + hang_s
    with psycopg.connect(store_uri, autocommit=True) as conn:
        while True:
            with contextlib.suppress(psycopg.errors.UndefinedTable):  # no writer yet
                if conn.execute(query, (request_key(request_id), request_id)).fetchone():
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"{request_id} not in the store's index after {hang_s} s")
            time.sleep(0.05)


def logged_ids(folder: Path, files: Sequence[Path] | None = None) -> list[str]:
    """Every request id in the inference log folder (or its ``files``), one per record
    (repeats kept)."""
    from mnist_mlops.monitoring.log_reader import read_batches

    ids: list[str] = []
    for batch in read_batches(folder, files=files, columns=["request_id"]):
        ids.extend(batch.column(0).to_pylist())
    return ids
