"""Numbered part files and a manifest: how a killed scoring run resumes without rescoring.

Input ``k * part_size .. (k + 1) * part_size`` is part ``k``. Each finished part
is written atomically (temp file + rename) to ``.<output>.parts/part-<k>.arrow``
with its errors and its dataset digest in the file's metadata, so a part file
that exists is a part that is done, complete. A rerun with the same manifest
(same input, same model, same part size) scores only the missing parts; any
other manifest means different work, and the old parts are discarded. The final
output is merged from the parts in order and renamed into place, so it is
byte-identical however many times the run was interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mnist_mlops.core.errors import UserError
from mnist_mlops.core.fileio import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

FORMATS = (".parquet", ".csv")
# Test hook: SIGKILL this process right after it has written this many parts, so a
# test controls exactly when the run dies (no sleeps, no dependence on speed).
KILL_AFTER_ENV = "MNIST_SCORE_KILL_AFTER_PARTS"


def output_format(path: str | os.PathLike[str]) -> str:
    """``parquet`` or ``csv`` from the output's suffix, else a one-line error."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{path}: the output must end in .parquet or .csv")
    return suffix[1:]


def part_table(id_column: str, ids, digits: np.ndarray, prob, probs: np.ndarray) -> pa.Table:
    """The output's columns: id, digit, top probability, then p0..p9."""
    ids_array = pa.array(ids, type=pa.int64() if id_column == "row" else pa.string())
    columns = {id_column: ids_array, "digit": digits, "prob": prob}
    by_digit = np.ascontiguousarray(probs.T)  # one contiguous column per digit
    columns.update({f"p{d}": by_digit[d] for d in range(10)})
    return pa.table(columns)


@dataclass(frozen=True)
class Merged:
    """What the parts add up to."""

    scored: int
    errors: list[tuple[str, str]]
    digest: str  # SHA-256 over the parts' digests, in order


class PartStore:
    """The part files of one output, in a hidden folder beside it."""

    def __init__(self, output: str | os.PathLike[str], manifest: dict) -> None:
        self.output = Path(output)
        self.folder = self.output.with_name(f".{self.output.name}.parts")
        self.manifest = manifest
        self.n_parts = -(-manifest["n"] // manifest["part_size"])
        self.written = 0
        self._prepare()

    def _prepare(self) -> None:
        found = self.folder / "manifest.json"
        if found.is_file() and read_json(found) == self.manifest:
            done = self.n_parts - len(self.pending())
            if done:
                log.info("resuming: %d of %d parts already scored", done, self.n_parts)
            return
        if self.folder.exists():
            log.info("discarding parts of a different job in %s", self.folder)
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        write_json(found, self.manifest)

    def path(self, k: int) -> Path:
        return self.folder / f"part-{k:06d}.arrow"

    def pending(self) -> list[int]:
        """Parts not yet written, in order."""
        return [k for k in range(self.n_parts) if not self.path(k).is_file()]

    def bounds(self, k: int) -> tuple[int, int]:
        """Input range of part ``k``."""
        size = self.manifest["part_size"]
        return k * size, min((k + 1) * size, self.manifest["n"])

    def write(self, k: int, table: pa.Table, errors: list[tuple[str, str]], digest: str) -> None:
        """Write part ``k`` atomically, its errors and digest in the file's metadata."""
        meta = {b"errors": json.dumps(errors).encode(), b"digest": digest.encode()}
        table = table.replace_schema_metadata(meta)
        with (
            atomic_path(self.path(k)) as tmp,
            pa.OSFile(str(tmp), "wb") as sink,
            pa.ipc.new_file(sink, table.schema) as writer,
        ):
            writer.write_table(table)
        self.written += 1
        if os.environ.get(KILL_AFTER_ENV) == str(self.written):
            os.kill(os.getpid(), signal.SIGKILL)

    def merge(self, fmt: str) -> Merged:
        """Concatenate the parts into the output (atomically), one part in memory at a time."""
        scored, errors, digest = 0, [], hashlib.sha256()
        with atomic_path(self.output) as tmp:
            writer = None
            for k in range(self.n_parts):
                with pa.memory_map(str(self.path(k))) as source:
                    table = pa.ipc.open_file(source).read_all()
                meta = table.schema.metadata
                errors.extend(tuple(e) for e in json.loads(meta[b"errors"]))
                digest.update(meta[b"digest"])
                table = table.replace_schema_metadata(None)
                writer = writer or _writer(tmp, fmt, table.schema)
                writer.write_table(table)
                scored += table.num_rows
            writer.close()
        return Merged(scored, errors, digest.hexdigest())

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _writer(path: Path, fmt: str, schema: pa.Schema):
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(str(path), schema)
    import pyarrow.csv as pcsv

    return pcsv.CSVWriter(str(path), schema)
