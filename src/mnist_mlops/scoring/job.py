"""A scoring job from start to written output: model, source, parts, engine, merge.

    from mnist_mlops.scoring.job import score
    summary = score("models/model.onnx", "scans/", "predictions.parquet")

Steps: resolve the model; open the source (a one-line error for an empty folder,
a wrong path or a bad array header); open the part store (resuming a killed run
of the same job); score the pending parts with the chosen engine; merge the
parts into the output and write the errors file, both atomically; remove the
parts. The caller records the run and prints the summary.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mnist_mlops.core.fileio import write_csv
from mnist_mlops.scoring.local import run_local
from mnist_mlops.scoring.model import Model, load_model
from mnist_mlops.scoring.parts import PartStore, output_format
from mnist_mlops.scoring.sources import ImageFolder, open_source

ENGINES = ("local", "ray")
PART_SIZE = {"images": 1024, "npy": 32768, "idx": 32768}  # inputs per resumable part


@dataclass(frozen=True)
class Summary:
    """What a finished job did: the one-line summary and the MLflow run are made of this."""

    model: Model
    input: str
    kind: str
    engine: str
    output: str
    errors_file: str | None
    inputs: int
    scored: int
    failed: int
    resumed: int  # inputs whose parts a killed run had already written
    seconds: float
    digest: str

    @property
    def images_per_s(self) -> float:
        """Inputs this run went through (not those resumed) per second of the whole job."""
        return (self.inputs - self.resumed) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        failed = f", {self.failed:,} failed (see {self.errors_file})" if self.failed else ""
        resumed = f", {self.resumed:,} of them resumed" if self.resumed else ""
        precision = f" ({self.model.precision})" if self.model.precision else ""
        return (
            f"scored {self.scored:,} of {self.inputs:,} inputs ({self.kind}){failed}{resumed} "
            f"in {self.seconds:.1f} s ({self.images_per_s:,.0f}/s) with model "
            f"{self.model.ref} v{self.model.version}{precision} -> {self.output}"
        )


def errors_path(output: str | os.PathLike[str]) -> Path:
    """Where the skipped inputs are listed: ``<output stem>.errors.csv`` beside the output."""
    out = Path(output)
    return out.with_name(f"{out.stem}.errors.csv")


def default_workers() -> int:
    """The CPUs this process may run on (not the machine's count under a CPU mask)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def score(
    model_ref: str,
    input_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    engine: str = "local",
    tracking_uri: str = "sqlite:///mlflow.db",
    workers: int | None = None,
    part_size: int | None = None,
    ray_options: dict | None = None,
    progress: bool | None = None,
) -> Summary:
    """Score ``input_path`` with ``model_ref`` into ``output`` (.parquet or .csv)."""
    started = time.perf_counter()
    fmt = output_format(output)
    model = load_model(model_ref, tracking_uri)
    source = open_source(input_path)
    manifest = {
        "input": source.fingerprint(),
        "model_sha256": model.sha256,
        "n": source.n,
        "part_size": part_size or PART_SIZE[source.kind],
    }
    store = PartStore(output, manifest)
    resumed = _done(store)
    with _progress_bar(source.n - resumed, progress) as bar:
        if engine == "ray":
            from mnist_mlops.scoring.ray_engine import run_ray

            run_ray(source, store, model.data, bar.update, **(ray_options or {}))
        else:
            run_local(source, store, model.data, workers or default_workers(), bar.update)
    merged = store.merge(fmt)
    errors_file = None
    if isinstance(source, ImageFolder):
        errors_file = str(errors_path(output))
        rows = [{"file": f, "reason": r} for f, r in merged.errors]
        write_csv(errors_file, ["file", "reason"], rows)
    store.remove()
    return Summary(
        model=model,
        input=str(input_path),
        kind=source.kind,
        engine=engine,
        output=str(output),
        errors_file=errors_file,
        inputs=source.n,
        scored=merged.scored,
        failed=len(merged.errors),
        resumed=resumed,
        seconds=time.perf_counter() - started,
        digest=merged.digest,
    )


def _done(store: PartStore) -> int:
    """Inputs in parts already written (a resumed run's bar starts past them)."""
    pending = sum(b - a for a, b in map(store.bounds, store.pending()))
    return store.manifest["n"] - pending


def _progress_bar(total: int, enabled: bool | None):
    """tqdm on a terminal (stderr), silent otherwise (logs, CI, tests)."""
    from tqdm import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total, unit="img", unit_scale=True, disable=not show, smoothing=0.1)
