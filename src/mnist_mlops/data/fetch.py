"""Fetch the MNIST IDX files from a list of mirrors, verified by SHA-256.

Each file is tried on each mirror in turn (the override first); a mirror that
errors, stalls past the timeout, or serves bytes whose SHA-256 is wrong (an
HTML error page with status 200, a truncated file) is skipped with a warning.
Only verified bytes are written, atomically, so the output folder never holds
a partial or wrong file. A mirror is a URL (http, https, file) or a local folder,
holding each file gzip-compressed (``name.gz``) or plain.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

from mnist_mlops.core.errors import UserError
from mnist_mlops.core.fileio import atomic_open, sha256_bytes, sha256_file

log = logging.getLogger(__name__)

MIRROR_ENV = "MNIST_MIRROR"
# No MNIST file is near this; a mirror serving more is lying (or a gzip bomb).
MAX_FILE_BYTES = 64 * 1024 * 1024
_CHUNK = 1 << 16


class MirrorError(Exception):
    """One mirror failed for one file for good (reason in the message); try the next."""


class MissingFileError(MirrorError):
    """The mirror does not have the file (HTTP 404, no such file): skipped without a warning,
    since most mirrors hold only the gzip or only the plain name."""


class TransientFetchError(MirrorError):
    """A failure that may not happen again (timeout, refused or reset connection, HTTP 5xx,
    a gzip stream cut short): retried, with a back-off, up to ``download.retries`` times."""


# HTTP statuses worth asking again: the server is busy or failing, not saying "no".
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def mirror_list(mirrors: Sequence[str], override: str = "") -> list[str]:
    """The mirrors to try, in order: env ``MNIST_MIRROR``, then ``override``, then ``mirrors``."""
    ordered = [os.environ.get(MIRROR_ENV, "").strip(), override.strip(), *mirrors]
    seen: list[str] = []
    for m in ordered:
        if m and m not in seen:
            seen.append(m)
    return seen


def _read_limited(
    stream: io.BufferedIOBase, total: int | None, label: str, deadline_s: float | None = None
) -> bytes:
    """Read a stream fully (bounded by MAX_FILE_BYTES) with a progress bar on a terminal.

    ``deadline_s`` bounds the whole read: the socket timeout only bounds each read, so a
    mirror trickling a byte at a time would otherwise hold the stage for hours.
    """
    from tqdm.auto import tqdm  # tqdm is a training-side dependency only

    buf = bytearray()
    give_up = None if deadline_s is None else time.monotonic() + deadline_s
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc=label,
        leave=False,
        disable=None,
        mininterval=0.5,
    ) as bar:
        # read1: return what has arrived, so the deadline is checked while bytes trickle.
        read = getattr(stream, "read1", stream.read)
        while chunk := read(_CHUNK):
            buf += chunk
            bar.update(len(chunk))
            if len(buf) > MAX_FILE_BYTES:
                raise MirrorError(f"more than {MAX_FILE_BYTES} bytes; not an MNIST file")
            if give_up is not None and time.monotonic() > give_up:
                raise MirrorError(
                    f"too slow: {len(buf)} bytes in {deadline_s:g} s "
                    "(raise download.deadline_s for a slow link)"
                )
    return bytes(buf)


def _fetch_raw(location: str, timeout_s: float, deadline_s: float | None = None) -> bytes:
    """Fetch bytes from a URL or a local path; MirrorError if absent, failing or too slow."""
    parsed = urlparse(location)
    if parsed.scheme in ("http", "https", "file"):
        request = urllib.request.Request(location, headers={"User-Agent": "mnist-mlops"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                length = response.headers.get("Content-Length")
                return _read_limited(
                    response, int(length) if length else None, Path(parsed.path).name, deadline_s
                )
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise MissingFileError("HTTP 404") from None
            kind = TransientFetchError if exc.code in _RETRY_STATUS else MirrorError
            raise kind(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientFetchError(f"{type(reason).__name__}: {reason}") from None
    path = Path(location)
    if not path.is_file():
        raise MissingFileError("no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise MirrorError(f"more than {MAX_FILE_BYTES} bytes; not an MNIST file")
    return path.read_bytes()


def _decompress(data: bytes) -> bytes:
    """Gunzip if the bytes are gzip (bounded), else return them unchanged."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            out = gz.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise TransientFetchError(f"corrupt gzip data ({exc})") from None
    if len(out) > MAX_FILE_BYTES:
        raise MirrorError("decompresses to more than an MNIST file can be")
    return out


def _join(mirror: str, name: str) -> str:
    if urlparse(mirror).scheme in ("http", "https", "file"):
        return mirror.rstrip("/") + "/" + name
    return str(Path(mirror) / name)


def fetch_one(
    name: str,
    expected_sha256: str,
    mirrors: Sequence[str],
    *,
    timeout_s: float,
    retries: int,
    fetch: Callable[..., bytes] = _fetch_raw,
    deadline_s: float | None = None,
) -> bytes:
    """Return the verified, decompressed bytes of ``name`` from the first mirror that has them.

    ``timeout_s``, ``retries`` and ``deadline_s`` (None: no whole-file limit) come from
    the ``download`` section of params.yaml.
    """
    failures: list[str] = []
    for mirror in mirrors:
        for candidate in (f"{name}.gz", name):
            location = _join(mirror, candidate)
            try:
                return _fetch_verified(
                    location, expected_sha256, fetch, timeout_s, retries, deadline_s
                )
            except MirrorError as exc:
                failures.append(f"{location}: {exc}")
                if not isinstance(exc, MissingFileError):
                    log.warning("mirror skipped: %s: %s", location, exc)
    tried = "; ".join(failures) if failures else "no mirrors configured"
    raise UserError(
        f"could not fetch {name} from any mirror ({tried}). "
        f"Set a working mirror: export {MIRROR_ENV}=<URL or folder holding {name}.gz>, "
        "or set download.mirror in params.yaml"
    )


def _fetch_verified(
    location: str,
    expected_sha256: str,
    fetch: Callable[..., bytes],
    timeout_s: float,
    retries: int,
    deadline_s: float | None,
) -> bytes:
    """The decompressed bytes at ``location`` if their SHA-256 is right; MirrorError if not.

    Only a :class:`TransientFetchError` is tried again (``retries`` times); wrong bytes
    stay wrong, and the last attempt's error is the one reported.
    """
    for attempt in range(retries):
        try:
            return _verified(_decompress(fetch(location, timeout_s, deadline_s)), expected_sha256)
        except TransientFetchError:
            time.sleep(min(2.0**attempt, 5.0))
    return _verified(_decompress(fetch(location, timeout_s, deadline_s)), expected_sha256)


def _verified(data: bytes, expected_sha256: str) -> bytes:
    digest = sha256_bytes(data)
    if digest != expected_sha256:
        hint = " (looks like an HTML page)" if data.lstrip()[:1] == b"<" else ""
        raise MirrorError(
            f"SHA-256 mismatch: got {digest[:12]}..., expected {expected_sha256[:12]}...{hint}"
        )
    return data


def download_mnist(
    out_dir: str | os.PathLike[str],
    sha256: Mapping[str, str],
    mirrors: Sequence[str],
    *,
    timeout_s: float,
    retries: int,
    deadline_s: float | None = None,
) -> dict[str, str]:
    """Make ``out_dir`` hold every file in ``sha256``, verified; return name -> SHA-256.

    Files already present with the right checksum are kept (a rerun after a kill
    only fetches what is missing).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, expected in sha256.items():
        target = out / name
        if target.is_file() and sha256_file(target) == expected:
            log.info("%s: already present and verified", target)
            continue
        data = fetch_one(
            name, expected, mirrors, timeout_s=timeout_s, retries=retries, deadline_s=deadline_s
        )
        with atomic_open(target, "wb") as handle:
            handle.write(data)
        log.info("%s: %d bytes, sha256 verified", target, len(data))
    return dict(sha256)
