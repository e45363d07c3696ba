"""Mirror fetching: checksums, fallback across mirrors, and the final error.

Lying mirrors are real HTTP servers on loopback (the ``http_mirror`` fixture).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from mnist_mlops.core.errors import UserError
from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.data.fetch import MIRROR_ENV, download_mnist, fetch_one, mirror_list

LOCAL = {"timeout_s": 5, "retries": 0}  # loopback and local folders answer at once


def test_local_folder_mirror_downloads_and_verifies(synthetic_mirror, tmp_path):
    folder, sha = synthetic_mirror
    assert download_mnist(tmp_path / "raw", sha, [str(folder)], **LOCAL) == sha
    for name, digest in sha.items():
        assert sha256_file(tmp_path / "raw" / name) == digest
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(sha)  # no temp files left


def test_falls_back_past_dead_and_lying_mirrors(synthetic_mirror, http_mirror, tmp_path, caplog):
    folder, sha = synthetic_mirror
    name = "train-labels-idx1-ubyte"
    http_mirror.respond(f"{name}.gz", 200, b"<html>Sorry, moved</html>")  # lies with a 200
    mirrors = [str(tmp_path / "missing"), http_mirror.url, str(folder)]
    data = fetch_one(name, sha[name], mirrors, timeout_s=5, retries=1)
    assert len(data) == 8 + 400
    assert "looks like an HTML page" in caplog.text


def test_http_mirror_serves_gzip(synthetic_mirror, http_mirror):
    folder, sha = synthetic_mirror
    name = "t10k-labels-idx1-ubyte"
    http_mirror.respond(f"{name}.gz", 200, (folder / f"{name}.gz").read_bytes())
    assert len(fetch_one(name, sha[name], [http_mirror.url], **LOCAL)) == 8 + 200


def test_wrong_bytes_everywhere_is_one_clear_error(synthetic_mirror, http_mirror, tmp_path):
    folder, sha = synthetic_mirror
    url = http_mirror.url
    name = "train-labels-idx1-ubyte"
    http_mirror.respond(f"{name}.gz", 500, b"boom")
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
        fetch_one("x", "0" * 64, [], **LOCAL)


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
    download_mnist(tmp_path, sha, [str(folder)], **LOCAL)
    before = {p: p.stat().st_mtime_ns for p in Path(tmp_path).iterdir()}
    download_mnist(tmp_path, sha, [], **LOCAL)  # no mirrors: would fail if it fetched anything
    assert before == {p: p.stat().st_mtime_ns for p in Path(tmp_path).iterdir()}


def _answers(statuses: list[int], body: bytes, asked: list[int]):
    """A mirror behaviour answering each request with the next status (the last repeats)."""

    def answer(handler) -> None:
        status = statuses[min(len(asked), len(statuses) - 1)]
        asked.append(status)
        payload = body if status == 200 else b"try later"
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    return answer


def test_a_busy_mirror_is_asked_again(synthetic_mirror, http_mirror, caplog):
    folder, sha = synthetic_mirror
    name = "t10k-labels-idx1-ubyte"
    asked: list[int] = []
    http_mirror.route(
        f"{name}.gz", _answers([503, 200], (folder / f"{name}.gz").read_bytes(), asked)
    )
    assert len(fetch_one(name, sha[name], [http_mirror.url], timeout_s=5, retries=1)) == 8 + 200
    assert asked == [503, 200]
    assert "mirror skipped" not in caplog.text


def test_a_refusal_or_a_missing_file_is_not_asked_again(synthetic_mirror, http_mirror, caplog):
    folder, sha = synthetic_mirror
    name = "t10k-labels-idx1-ubyte"
    refused: list[int] = []
    http_mirror.route(f"{name}.gz", _answers([403, 200], b"", refused))  # the plain name: 404
    with pytest.raises(UserError) as err:
        fetch_one(name, sha[name], [http_mirror.url], timeout_s=5, retries=2)
    assert refused == [403]
    assert "HTTP 403" in str(err.value) and "HTTP 404" in str(err.value)
    # A mirror without the file is normal (most hold only one of .gz and plain): no warning.
    skipped = [r.getMessage() for r in caplog.records if "mirror skipped" in r.getMessage()]
    assert len(skipped) == 1 and "HTTP 403" in skipped[0], skipped
