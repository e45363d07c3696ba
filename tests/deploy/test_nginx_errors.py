"""nginx's own refusals (deploy/nginx/nginx.conf) are JSON in the service's shape.

A client of the replicas meets two servers: nginx and a replica. The replica answers bad
input with ``{"error": ...}``; a body over nginx's ``client_max_body_size``, or no replica
answering, is refused by nginx itself, and must read the same way, not as nginx's HTML
page. The real nginx runs with the shipped configuration; no replica listens behind it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.bento_process import free_port
from support.replicas import NGINX_CONF, nginx_front


@pytest.fixture(scope="module")
def front() -> Iterator[str]:
    """nginx's URL, its one replica a port nothing listens on."""
    home = Path(tempfile.mkdtemp(prefix="mnist-nginx-"))
    home.chmod(0o755)  # nginx's workers read their prefix
    (home / "replicas.conf").write_text(f"server 127.0.0.1:{free_port()} max_fails=1;\n")
    port = free_port()
    try:
        with nginx_front(home, port):
            yield f"http://127.0.0.1:{port}"
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_body_over_nginx_limit_is_a_json_413(front):
    limit_mb = int(re.search(r"client_max_body_size (\d+)m;", NGINX_CONF.read_text())[1])
    body = b"\0" * (limit_mb * 1024 * 1024 + 1)
    response = httpx.post(f"{front}/predict", files={"image": ("big.png", body)}, timeout=30)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert "client_max_body_size" in response.json()["error"]


def test_no_replica_answering_is_a_json_502_to_retry(front):
    response = httpx.post(f"{front}/predict_array", json={"pixels": [[0.0] * 28] * 28})
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert "retry" in response.json()["error"] and response.headers["retry-after"] == "5"
