"""The Ray engine: the same parts, loaded by Ray tasks and scored by a pool of Ray actors.

    python -m pipeline.score models/model.onnx scans/ out.parquet --engine ray \\
        --ray-address auto --ray-actors 8 --ray-actor-cpus 4

A Ray Data pipeline of the parts still to do: a task loads each part (reads and
preprocesses its images, or reads its rows; one CPU each, as many at once as the
cluster has CPUs), then ``map_batches`` hands the rows to
:class:`~mnist_mlops.scoring.predictor.OnnxPredictor` actors, each holding one ONNX
Runtime session with as many threads as the CPUs Ray gives the actor. Results
stream back to the driver in order and are written as the same part files the
local engine writes, so a killed Ray run resumes, and the output is merged the
same way. Workers read the input by path: on a cluster it must be on storage
every node mounts at the same path. Ray is imported here only, and only when
this engine is chosen (it lives in the ``ray`` extra, never in the serving image).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mnist_mlops.imaging.pools import one_opencv_thread
from mnist_mlops.scoring.parts import PartStore, part_table
from mnist_mlops.scoring.predictor import OnnxPredictor
from mnist_mlops.scoring.sources import Source


def load_parts(batch: dict[str, np.ndarray], source: Source, bounds: dict) -> dict:
    """Ray task: the parts in ``batch["part"]`` as rows; a refused image is a row with its error."""
    one_opencv_thread()  # the task has one CPU (num_cpus=1 below)
    columns: dict[str, list] = {k: [] for k in ("part", "id", "pixels", "error", "digest")}
    for k in batch["part"]:
        loaded = source.load(*bounds[int(k)])
        digest = loaded.digest()
        bad = [e[0] for e in loaded.errors]
        columns["id"] += [*loaded.ids, *bad]
        columns["pixels"] += [loaded.pixels, np.zeros((len(bad), 28, 28), np.float32)]
        columns["error"] += [""] * len(loaded.ids) + [e[1] for e in loaded.errors]
        columns["part"] += [int(k)] * (len(loaded.ids) + len(bad))
        columns["digest"] += [digest] * (len(loaded.ids) + len(bad))
    out = {k: np.array(v, dtype=object) for k, v in columns.items() if k != "pixels"}
    out["part"] = np.array(columns["part"], dtype=np.int64)
    out["pixels"] = np.concatenate(columns["pixels"])
    return out


def run_ray(
    source: Source,
    store: PartStore,
    model: bytes,
    progress: Callable[[int], object],
    address: str | None = None,
    actors: int | None = None,
    actor_cpus: int = 1,
) -> None:
    """Score every pending part of ``store`` on Ray (the running one, or ``address``)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    pending = store.pending()
    if not pending:
        return
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ray.data.DataContext.get_current().enable_progress_bars = False
    cpus = int(ray.cluster_resources().get("CPU", 1))
    # Loading (image preprocessing) is the heavy side: leave it at least half the CPUs.
    actors = actors or max(1, cpus // (2 * actor_cpus))
    ds = ray.data.from_items([{"part": k} for k in pending], override_num_blocks=len(pending))
    ds = ds.map_batches(
        load_parts,
        batch_size=1,
        fn_kwargs={"source": source, "bounds": {k: store.bounds(k) for k in pending}},
        num_cpus=1,
        # A lost load is simply redone. These retries also make the two stages' remote
        # args differ, so Ray does not fuse loading into the actors, where it would
        # run on the actors' few CPUs instead of as many tasks as the cluster holds.
        max_retries=3,
    )
    ds = ds.map_batches(
        OnnxPredictor,
        fn_constructor_kwargs={"model": model, "threads": actor_cpus},
        batch_size=None,  # a whole loaded part per call: one batch of session.run calls
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=actor_cpus,
    )
    _write_in_order(ds.iter_batches(batch_size=None, batch_format="numpy"), source, store, progress)


def _write_in_order(
    batches: Any, source: Source, store: PartStore, progress: Callable[[int], object]
) -> None:
    """Group the ordered result rows by part; write each part once its last row has come."""
    current: list[dict[str, np.ndarray]] = []
    for batch in batches:
        for k in np.unique(batch["part"]):
            rows = {c: v[batch["part"] == k] for c, v in batch.items()}
            if current and current[0]["part"][0] != k:
                _write_part(current, source, store)
                current = []
            current.append(rows)
            progress(len(rows["part"]))
    if current:
        _write_part(current, source, store)


def _write_part(pieces: list[dict[str, np.ndarray]], source: Source, store: PartStore) -> None:
    rows = {c: np.concatenate([p[c] for p in pieces]) for c in pieces[0]}
    ok = rows["error"] == ""
    ids = rows["id"][ok]
    ids = ids.astype(np.int64) if source.id_column == "row" else ids.tolist()
    table = part_table(
        source.id_column, ids, rows["digit"][ok], rows["prob"][ok], rows["probs"][ok]
    )
    errors = [(str(i), str(e)) for i, e in zip(rows["id"][~ok], rows["error"][~ok])]
    store.write(int(rows["part"][0]), table, errors, str(rows["digest"][0]))
