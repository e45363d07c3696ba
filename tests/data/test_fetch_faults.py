"""Mirrors that stall, refuse, truncate or flood are skipped; if none works, one clear error.

Every faulty mirror is a real loopback server (raw sockets, or the
``http_mirror`` fixture); the good mirror is the synthetic local folder. Each case uses a
small ``timeout_s`` and checks which mechanism let the download go on (the logged reason:
a timeout, the whole-file deadline, a refusal), never how long it took: without the
mechanism the case would end differently (another reason, or the stall's own end).
"""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator

import pytest

from mnist_mlops.core.errors import UserError
from mnist_mlops.data.fetch import MAX_FILE_BYTES, MIRROR_ENV, download_mnist, fetch_one

NAME = "t10k-labels-idx1-ubyte"  # the smallest synthetic file: 8 + 200 bytes


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A port that accepts TCP connections (kernel backlog) and never says a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mnist/"
    finally:
        sock.close()


@pytest.fixture
def closed_port() -> str:
    """A URL on a port nobody listens on: connection refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/mnist/"


def _status(handler, body: bytes, length: int | None = None, stall: bool = False) -> None:
    """Send 200 with ``body`` (claiming ``length`` bytes), then stall or close."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)
    handler.wfile.flush()
    if stall:
        handler.release.wait(30)
    handler.close_connection = True


def _flood(handler) -> None:
    """Stream zeros with no Content-Length until the client hangs up (or 2x the cap)."""
    handler.send_response(200)
    handler.end_headers()
    block = b"\0" * (1 << 20)
    for _ in range(2 * MAX_FILE_BYTES // len(block)):
        handler.wfile.write(block)
    handler.close_connection = True


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """~65 KB of gzip that inflates to just over MAX_FILE_BYTES."""
    return gzip.compress(b"\0" * (MAX_FILE_BYTES + 1024), compresslevel=9)


def test_stalled_connection_times_out_and_next_mirror_wins(synthetic_mirror, silent_port, caplog):
    folder, sha = synthetic_mirror
    data = fetch_one(NAME, sha[NAME], [silent_port, str(folder)], timeout_s=0.5, retries=0)
    assert len(data) == 8 + 200
    assert "timed out" in caplog.text  # the silent port never answers: only a timeout ends it


def test_headers_then_stall_times_out_mid_body(synthetic_mirror, http_mirror, caplog):
    folder, sha = synthetic_mirror
    url = http_mirror.url
    good = (folder / f"{NAME}.gz").read_bytes()
    http_mirror.route(f"{NAME}.gz", lambda h: _status(h, good[:10], length=len(good), stall=True))
    # retries=1: the stall is treated as transient and retried once, with a 1 s back-off.
    data = fetch_one(NAME, sha[NAME], [url, str(folder)], timeout_s=0.5, retries=1)
    assert len(data) == 8 + 200
    # The stall's own end (30 s) would log a short body instead: the read timeout cut it.
    assert "timed out" in caplog.text


def test_trickling_mirror_hits_the_whole_file_deadline(synthetic_mirror, http_mirror, caplog):
    """A byte every 50 ms never trips the 0.5 s read timeout; the 1 s file deadline must."""
    folder, sha = synthetic_mirror
    url, release = http_mirror.url, http_mirror.release
    good = (folder / f"{NAME}.gz").read_bytes()

    def trickle(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(good)))
        handler.end_headers()
        for byte in good:
            if release.is_set():
                break
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.05)
        handler.close_connection = True

    http_mirror.route(f"{NAME}.gz", trickle)
    data = fetch_one(NAME, sha[NAME], [url, str(folder)], timeout_s=0.5, retries=1, deadline_s=1.0)
    assert len(data) == 8 + 200
    assert "too slow" in caplog.text  # the trickle would have completed: the deadline cut it


def test_connection_refused_falls_through_quickly(synthetic_mirror, closed_port, caplog):
    folder, sha = synthetic_mirror
    data = fetch_one(NAME, sha[NAME], [closed_port, str(folder)], timeout_s=5, retries=0)
    assert len(data) == 8 + 200
    assert "Connection refused" in caplog.text or "ConnectionRefusedError" in caplog.text
    assert "timed out" not in caplog.text  # refused at once, not after waiting for the timeout


def test_body_shorter_than_content_length_is_rejected(synthetic_mirror, http_mirror, caplog):
    folder, sha = synthetic_mirror
    url = http_mirror.url
    good = (folder / f"{NAME}.gz").read_bytes()
    http_mirror.route(f"{NAME}.gz", lambda h: _status(h, good[:-20], length=len(good)))
    data = fetch_one(NAME, sha[NAME], [url, str(folder)], timeout_s=5, retries=0)
    assert len(data) == 8 + 200
    assert f"{url}{NAME}.gz" in caplog.text


def test_truncated_gzip_with_honest_length_is_rejected(synthetic_mirror, http_mirror, caplog):
    folder, sha = synthetic_mirror
    url = http_mirror.url
    cut = (folder / f"{NAME}.gz").read_bytes()[:-30]
    http_mirror.route(f"{NAME}.gz", lambda h: _status(h, cut))
    data = fetch_one(NAME, sha[NAME], [url, str(folder)], timeout_s=5, retries=0)
    assert len(data) == 8 + 200
    assert "corrupt gzip" in caplog.text


def test_oversize_response_is_cut_off(synthetic_mirror, http_mirror, caplog):
    folder, sha = synthetic_mirror
    url = http_mirror.url
    http_mirror.route(f"{NAME}.gz", _flood)
    data = fetch_one(NAME, sha[NAME], [url, str(folder)], timeout_s=5, retries=0)
    assert len(data) == 8 + 200
    assert f"more than {MAX_FILE_BYTES} bytes" in caplog.text


def test_gzip_bomb_is_not_inflated_past_the_cap(synthetic_mirror, http_mirror, gzip_bomb, caplog):
    folder, sha = synthetic_mirror
    url = http_mirror.url
    assert len(gzip_bomb) < MAX_FILE_BYTES // 100
    http_mirror.route(f"{NAME}.gz", lambda h: _status(h, gzip_bomb))
    data = fetch_one(NAME, sha[NAME], [url, str(folder)], timeout_s=5, retries=0)
    assert len(data) == 8 + 200
    assert "decompresses to more than" in caplog.text


def test_every_fault_at_once_is_one_clear_error(
    synthetic_mirror, http_mirror, silent_port, closed_port, gzip_bomb, tmp_path
):
    """No mirror works: one UserError listing each mirror's reason, and no file written."""
    _, sha = synthetic_mirror
    url = http_mirror.url
    http_mirror.route(f"{NAME}.gz", lambda h: _status(h, gzip_bomb))
    http_mirror.route(NAME, lambda h: _status(h, b"<!doctype html><title>Moved</title>"))
    with pytest.raises(UserError) as err:
        download_mnist(
            tmp_path / "raw",
            {NAME: sha[NAME]},
            [silent_port, closed_port, url],
            timeout_s=0.5,
            retries=0,
        )
    message = str(err.value)
    assert "\n" not in message
    for reason in (
        "timed out",
        "Connection refused",
        "decompresses to more than",
        "looks like an HTML page",
        f"export {MIRROR_ENV}=",
        "download.mirror",
    ):
        assert reason in message, (reason, message)
    assert list((tmp_path / "raw").iterdir()) == []


def test_download_cli_without_a_working_mirror_says_how_to_set_one(
    closed_port, tmp_path, params_writer, stage_cli
):
    mirrors = [closed_port, str(tmp_path / "empty")]
    download = {"mirrors": mirrors, "mirror": "", "timeout_s": 2, "retries": 0}
    params = params_writer(tmp_path / "params.yaml", download=download)
    proc = stage_cli("download", str(tmp_path / "raw"), "--params", str(params))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    # Everything else on stderr is a log record (the skipped-mirror warnings).
    assert all(line.startswith(("WARNING ", "INFO ")) for line in lines[:-1]), proc.stderr
    assert "could not fetch" in errors[0] and "-idx" in errors[0]  # names the file
    assert f"export {MIRROR_ENV}=" in errors[0]
    assert not any((tmp_path / "raw").iterdir())
