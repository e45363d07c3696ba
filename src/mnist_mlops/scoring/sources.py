"""What can be scored: a folder of image files, an ``.npy`` array, or an IDX file.

A source is a numbered sequence of inputs that can be loaded by range
(``load(start, stop)``), from any process: the local engine hands ranges to a
process pool, the Ray engine to tasks on other machines, and a resumed run
loads only the ranges it has not written yet. Nothing is held in memory but
the range being loaded: arrays are read with plain file reads (a memory map
would count the whole file in the resident set), images one file at a time.

Images go through exactly the service's preprocessing
(:func:`~mnist_mlops.imaging.preprocess_image`); a file that it refuses
is reported with the service's reason and skipped, never fatal.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_mlops.core.errors import UserError
from mnist_mlops.data.idx import idx_layout, idx_size
from mnist_mlops.imaging import ImageError, preprocess_image
from mnist_mlops.inference.arrays import ArrayFormatError, check_pixels, image_count, npy_layout

NPY_MAGIC = b"\x93NUMPY"
GZIP_MAGIC = b"\x1f\x8b"
PIXELS = 28 * 28


@dataclass
class Batch:
    """Loaded inputs: ids and pixels of the good ones, (id, reason) of the bad ones.

    ``digests`` is one line per input, good or bad, in order: a part's dataset digest
    is the hash of its lines, whichever process loaded which piece.
    """

    ids: list[str] | np.ndarray
    pixels: np.ndarray  # (n_ok, 28, 28), 0..255: float32 (images) or the file's dtype
    errors: list[tuple[str, str]] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)

    @staticmethod
    def concat(batches: list[Batch]) -> Batch:
        """One batch from consecutive pieces, in order."""
        ids = [i for b in batches for i in b.ids]
        if batches and isinstance(batches[0].ids, np.ndarray):
            ids = np.concatenate([b.ids for b in batches])
        return Batch(
            ids=ids,
            pixels=np.concatenate([b.pixels for b in batches]),
            errors=[e for b in batches for e in b.errors],
            digests=[d for b in batches for d in b.digests],
        )

    def digest(self) -> str:
        """SHA-256 of what was loaded: file names and contents, or array bytes."""
        return hashlib.sha256(b"\n".join(self.digests)).hexdigest()


@dataclass(frozen=True)
class ArraySource:
    """Rows of an ``.npy`` or IDX file: N x 28 x 28 (or N x 784) numbers in 0..255."""

    path: str
    kind: str  # "npy" or "idx"
    n: int
    dtype: str  # numpy dtype string, byte order included (IDX is big-endian)
    offset: int

    id_column = "row"

    def load(self, start: int, stop: int) -> Batch:
        """Rows ``start..stop``, checked (finite, 0..255) as they are read."""
        dtype = np.dtype(self.dtype)
        with open(self.path, "rb") as handle:
            handle.seek(self.offset + start * PIXELS * dtype.itemsize)
            raw = handle.read((stop - start) * PIXELS * dtype.itemsize)
        block = np.frombuffer(raw, dtype=dtype).reshape(-1, 28, 28)
        pixels = check_pixels(block, start, self.path)
        return Batch(np.arange(start, stop, dtype=np.int64), pixels, [], [raw])

    def fingerprint(self) -> str:
        stat = os.stat(self.path)
        return f"{self.kind}:{os.path.abspath(self.path)}:{stat.st_size}:{stat.st_mtime_ns}"


@dataclass(frozen=True)
class ImageFolder:
    """Every regular file under ``root`` (recursively), in sorted relative-path order."""

    root: str
    files: tuple[str, ...]  # POSIX paths relative to root
    kind = "images"
    id_column = "file"

    @property
    def n(self) -> int:
        return len(self.files)

    def load(self, start: int, stop: int) -> Batch:
        """Files ``start..stop`` through the service's preprocessing; refusals become errors."""
        ids, pixels, errors, digests = [], [], [], []
        for rel in self.files[start:stop]:
            try:
                with open(os.path.join(self.root, rel), "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                errors.append((rel, f"cannot read: {exc.strerror or exc}"))
                digests.append(f"{rel}\tunreadable".encode())
                continue
            digests.append(f"{rel}\t{hashlib.sha256(data).hexdigest()}".encode())
            try:
                pixels.append(preprocess_image(data))
                ids.append(rel)
            except ImageError as exc:
                errors.append((rel, str(exc)))
            except Exception as exc:  # one strange file must not end a million-file job
                errors.append((rel, f"preprocessing failed: {type(exc).__name__}: {exc}"))
        stacked = np.stack(pixels) if pixels else np.zeros((0, 28, 28), np.float32)
        return Batch(ids, stacked.astype(np.float32, copy=False), errors, digests)

    def fingerprint(self) -> str:
        """Names, sizes and modification times: a changed folder is not resumed."""
        root = os.path.abspath(self.root)
        digest = hashlib.sha256(root.encode())
        for rel in self.files:
            stat = os.stat(os.path.join(root, rel))
            digest.update(f"\n{rel}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
        return f"images:{digest.hexdigest()}"


Source = ArraySource | ImageFolder


def list_files(root: Path) -> tuple[str, ...]:
    """Regular files under ``root``, recursively, sorted by relative POSIX path.

    ``os.scandir`` knows each entry's type from the directory listing: no stat and no
    ``Path`` per file, which at 100,000 files was seconds of the main process's time
    before any worker started. Symbolic links to files count; to folders they are not
    followed (as ``os.walk`` does).
    """
    found: list[str] = []
    folders = [""]
    while folders:
        rel = folders.pop()
        with os.scandir(os.path.join(root, rel)) as entries:
            for entry in entries:
                name = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir(follow_symlinks=False):
                    folders.append(name)
                elif entry.is_file():
                    found.append(name)
    return tuple(sorted(found))


def open_source(path: str | os.PathLike[str]) -> Source:
    """The source at ``path``: a folder of images, an ``.npy`` or an IDX file."""
    p = Path(path)
    if p.is_dir():
        files = list_files(p)
        if not files:
            raise UserError(f"{p}: the folder has no files; point at a folder of images")
        return ImageFolder(str(p), files)
    if not p.is_file():
        raise UserError(f"{p}: no such file or folder; give a folder of images, .npy or IDX file")
    with open(p, "rb") as handle:
        head = handle.read(64)
    if head.startswith(NPY_MAGIC):
        layout = npy_layout(p)
        return ArraySource(str(p), "npy", layout.n, layout.dtype.str, layout.offset)
    if head.startswith(GZIP_MAGIC):
        raise UserError(f"{p}: gzip-compressed; decompress it first (gunzip -k {p})")
    return _idx_source(p)


def _idx_source(p: Path) -> ArraySource:
    try:
        with open(p, "rb") as handle:
            dtype, shape, offset = idx_layout(handle.read(20), str(p))
    except UserError:
        raise UserError(
            f"{p}: not a folder, .npy or IDX file; give a folder of images, "
            "an N x 28 x 28 .npy or an MNIST-style IDX file"
        ) from None
    n = image_count(shape, str(p))
    if os.path.getsize(p) != idx_size(dtype, shape, offset):
        raise ArrayFormatError(f"{p}: size does not match its IDX header {shape}; truncated?")
    return ArraySource(str(p), "idx", n, dtype.str, offset)
