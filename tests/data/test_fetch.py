"""Mirror fetching: checksums, fallback across mirrors, and the final error.

Lying mirrors are real HTTP servers on loopback (http.server in a thread).
"""

from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_mlops.data.fetch import MIRROR_ENV, download_mnist, fetch_one, mirror_list
from mnist_mlops.errors import UserError
from mnist_mlops.fileio import sha256_file


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves what the test put in ``routes``: path -> (status, body)."""

    routes: dict[str, tuple[int, bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802
        status, body = self.routes.get(self.path, (404, b"not here"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_mirror() -> Iterator[tuple[str, dict]]:
    routes: dict[str, tuple[int, bytes]] = {}
    handler = type("H", (_Handler,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mnist/", routes
    finally:
        server.shutdown()
        server.server_close()


def test_local_folder_mirror_downloads_and_verifies(synthetic_mirror, tmp_path):
    folder, sha = synthetic_mirror
    assert download_mnist(tmp_path / "raw", sha, [str(folder)]) == sha
    for name, digest in sha.items():
        assert sha256_file(tmp_path / "raw" / name) == digest
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(sha)  # no temp files left


def test_falls_back_past_dead_and_lying_mirrors(synthetic_mirror, http_mirror, tmp_path, caplog):
    folder, sha = synthetic_mirror
    url, routes = http_mirror
    name = "train-labels-idx1-ubyte"
    routes[f"/mnist/{name}.gz"] = (200, b"<html>Sorry, moved</html>")  # lies with a 200
    data = fetch_one(name, sha[name], [str(tmp_path / "missing"), url, str(folder)], timeout_s=5)
    assert len(data) == 8 + 400
    assert "looks like an HTML page" in caplog.text


def test_http_mirror_serves_gzip(synthetic_mirror, http_mirror):
    folder, sha = synthetic_mirror
    url, routes = http_mirror
    name = "t10k-labels-idx1-ubyte"
    routes[f"/mnist/{name}.gz"] = (200, (folder / f"{name}.gz").read_bytes())
    assert len(fetch_one(name, sha[name], [url], timeout_s=5)) == 8 + 200


def test_wrong_bytes_everywhere_is_one_clear_error(synthetic_mirror, http_mirror, tmp_path):
    folder, sha = synthetic_mirror
    url, routes = http_mirror
    name = "train-labels-idx1-ubyte"
    routes[f"/mnist/{name}.gz"] = (500, b"boom")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / f"{name}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01 wrong"))
    with pytest.raises(UserError) as err:
        download_mnist(tmp_path / "raw", {name: sha[name]}, [url, str(bad)], timeout_s=5, retries=0)
    message = str(err.value)
    assert "HTTP 500" in message and "SHA-256 mismatch" in message
    assert MIRROR_ENV in message and "download.mirror" in message
    assert not (tmp_path / "raw" / name).exists()


def test_no_mirrors_says_how_to_set_one(tmp_path):
    with pytest.raises(UserError, match=f"export {MIRROR_ENV}="):
        fetch_one("x", "0" * 64, [])


def test_env_override_comes_first(monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, "/env/mirror")
    assert mirror_list(["https://a/", "/param"], "/param") == [
        "/env/mirror",
        "/param",
        "https://a/",
    ]
    monkeypatch.delenv(MIRROR_ENV)
    assert mirror_list(["https://a/"], "") == ["https://a/"]


def test_present_verified_files_are_not_refetched(synthetic_mirror, tmp_path):
    folder, sha = synthetic_mirror
    download_mnist(tmp_path, sha, [str(folder)])
    before = {p: p.stat().st_mtime_ns for p in Path(tmp_path).iterdir()}
    download_mnist(tmp_path, sha, [])  # no mirrors: would fail if it fetched anything
    assert before == {p: p.stat().st_mtime_ns for p in Path(tmp_path).iterdir()}
