"""Faults leave no corrupt state: killed stages and corrupted inputs, with the real pipeline.

Kills: a real ``dvc repro`` runs in its own process group in a copy of the session's
reproduced git+DVC repo (tests/pipeline/conftest.py, on synthetic data); once the stage is
demonstrably mid-way, the whole group gets a signal. The test holds the stage still
there, so the moment does not depend on how fast this machine is: the loopback
mirror trickles once 32 KB are sent, and training (after its epoch-1 checkpoint)
and export (with the ONNX staging file written) wait at a pause point
(``MNIST_PAUSE_AT``, :mod:`mnist_mlops.core.pause`). Then: dvc.lock is untouched,
no declared output is half-written, nothing partial reached the DVC cache, and the
next ``dvc repro`` produces outputs identical to the uninterrupted one (CPU training
with a fixed seed and ``deterministic: true`` is bit-for-bit repeatable, which this
also checks).

Corruption: the stage CLIs run as subprocesses on broken inputs and must exit 2
with one ``error:`` line naming the file, and no traceback.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_mlops.core.pause import PAUSE_ENV
from mnist_mlops.data.splits import RAW_FILES
from support.pipeline_repo import HANG_S, build_repo, repo_env, run
from support.synthetic import encode_idx

RAW_NAMES = tuple(name for pair in RAW_FILES.values() for name in pair)


# --------------------------------------------------------------------------- helpers


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _json(path: Path) -> object:
    return json.loads(path.read_text())


_env = repo_env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    return run(cmd, cwd, env, timeout).stdout


def _group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


class Repro:
    """A ``dvc repro`` in its own session; output goes to a log file (no pipe to fill).

    ``budget``: seconds any wait on it may take (the baseline's measured repro, scaled).
    """

    def __init__(
        self, args: list[str], repo: Path, env: dict[str, str], log: Path, budget: float
    ) -> None:
        self.log = log
        self.budget = budget
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["dvc", "repro", *args],
                cwd=repo,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_default_interrupts,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.budget
        while not ready():
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                pytest.fail(f"dvc repro ended (rc {rc}) before {what}:\n{self.text()}")
            if time.monotonic() > deadline:
                self.kill(signal.SIGKILL)
                pytest.fail(f"timed out waiting for {what}:\n{self.text()}")
            time.sleep(0.005)

    def kill(self, sig: signal.Signals) -> int:
        """Signal the whole group; wait until no process of it is left (SIGKILL if it
        outlasts the budget)."""
        pgid = self.proc.pid
        os.killpg(pgid, sig)
        try:
            rc = self.proc.wait(timeout=self.budget)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            rc = self.proc.wait(timeout=60)
            pytest.fail(f"dvc repro ignored {sig.name} for {self.budget:.0f} s:\n{self.text()}")
        deadline = time.monotonic() + self.budget
        while (left := _group_alive(pgid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if left:
            os.killpg(pgid, signal.SIGKILL)
            pytest.fail(f"processes {left} outlived {sig.name} to their group")
        return rc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGKILL)


def _default_interrupts() -> None:
    """In the child before exec: SIGINT and SIGQUIT back to their defaults.

    A job started in the background of a non-interactive shell (``cmd &``, as some CI
    runners and tool wrappers do) inherits SIGINT ignored, and Python then never installs
    its KeyboardInterrupt handler: the SIGINT test would signal a stage that cannot hear it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@pytest.fixture
def repros() -> Iterator[Callable[..., Repro]]:
    """Start ``dvc repro`` runs that are always gone (whole group) when the test ends."""
    started: list[Repro] = []

    def start(*args, **kwargs) -> Repro:
        started.append(Repro(*args, **kwargs))
        return started[-1]

    yield start
    for r in started:
        if r.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(r.proc.pid, signal.SIGKILL)
            r.proc.wait(timeout=30)


def _outputs(repo: Path, downstream: bool = True) -> dict[str, object]:
    """What must be identical between an uninterrupted and a recovered run.

    ``downstream=False`` stops at the train stage's outputs.
    """
    import torch

    processed = repo / "data/processed"
    out: dict[str, object] = {
        "data/processed/mnist.npz": _sha(processed / "mnist.npz"),
        "data/processed/stats.json": _json(processed / "stats.json"),
    }
    if downstream:
        out["models/model.onnx"] = _sha(repo / "models/model.onnx")
        out["models/model.int8.onnx"] = _sha(repo / "models/model.int8.onnx")  # deterministic too
        for name in ("evaluate", "per_class", "confusion_matrix"):
            out[f"metrics/{name}.json"] = _json(repo / f"metrics/{name}.json")
    train = json.loads((repo / "metrics/train.json").read_text())
    train.pop("seconds")  # wall time is the only thing allowed to differ
    out["metrics/train.json"] = train
    ckpt = torch.load(repo / "models/model.ckpt", map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    out["checkpoint weights"] = hashlib.sha256(
        b"".join(k.encode() + v.numpy().tobytes() for k, v in sorted(state.items()))
    ).hexdigest()
    return out


def _lock_stages(repo: Path) -> dict:
    lock = repo / "dvc.lock"
    return yaml.safe_load(lock.read_text())["stages"] if lock.exists() else {}


def _cache_files(repo: Path) -> set[str]:
    cache = repo / ".dvc" / "cache"
    if not cache.exists():
        return set()
    return {str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()}


def _assert_committed_dirs_clean(repo: Path) -> None:
    """The directory outputs DVC committed list exactly the real files, no temp files."""
    stages = _lock_stages(repo)
    expected = {"data/raw": set(RAW_NAMES), "data/processed": {"mnist.npz", "stats.json"}}
    for stage in stages.values():
        for out in stage.get("outs", []):
            if out["path"] in expected:
                md5 = out["md5"].removesuffix(".dir")
                manifest = repo / ".dvc/cache/files/md5" / md5[:2] / f"{md5[2:]}.dir"
                names = {e["relpath"] for e in json.loads(manifest.read_text())}
                assert names == expected[out["path"]], (out["path"], names)


# --------------------------------------------------------------------------- repos


@pytest.fixture(scope="module")
def template(tmp_path_factory, synthetic_mirror) -> Path:
    """A committed git+DVC repo with the pipeline and tiny params; never run itself."""
    return build_repo(tmp_path_factory.mktemp("template") / "repo", synthetic_mirror)


@dataclass(frozen=True)
class Baseline:
    """The session's reproduced repo (tests/pipeline/conftest.py), which the tests here only
    copy, and its outputs: what a rerun after a kill must match."""

    repo: Path
    outputs: dict[str, object]
    budget: float  # seconds for any one repro or wait here (conftest.Reproduced.budget)


@pytest.fixture(scope="module")
def baseline(reproduced) -> Baseline:
    epochs = _json(reproduced.path / "metrics/train.json")["epochs"]
    assert epochs >= 2, "the training kill pauses at the start of epoch 2"
    return Baseline(reproduced.path, _outputs(reproduced.path), reproduced.budget)


def _clone(src: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(src, repo, symlinks=True)
    return repo


# --------------------------------------------------------------------------- kills


KILL_AFTER_BYTES = 32 * 1024


def _serve_slowly(path: Path, sent_enough: threading.Event, release: threading.Event):
    """A mirror behaviour: ``path``'s first 32 KB, then a byte a second until released.

    The trickle keeps the download alive (each read gets a byte well inside its
    timeout) and unfinished for as long as the test takes to kill it.
    """

    def behaviour(handler) -> None:
        body = path.read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[:KILL_AFTER_BYTES])
        handler.wfile.flush()
        if len(body) <= KILL_AFTER_BYTES:
            return  # a small file (labels) arrives whole
        sent_enough.set()  # well into the transfer: time to kill
        for byte in body[KILL_AFTER_BYTES:-1]:  # never the last byte: never complete
            if release.wait(1.0):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    return behaviour


@pytest.fixture
def slow_mirror(synthetic_mirror, http_mirror) -> tuple[str, threading.Event]:
    """The synthetic mirror's files served slowly over HTTP: (base URL, "32 KB sent")."""
    folder, _ = synthetic_mirror
    sent_enough = threading.Event()
    for path in folder.iterdir():
        http_mirror.route(path.name, _serve_slowly(path, sent_enough, http_mirror.release))
    return http_mirror.url, sent_enough


@pytest.mark.slow
@pytest.mark.timeout(HANG_S, func_only=True)
def test_kill_during_download_leaves_nothing_and_rerun_matches(
    template, baseline, synthetic_mirror, slow_mirror, repros, tmp_path
):
    _, sha = synthetic_mirror
    base_repo, base, budget = baseline.repo, baseline.outputs, baseline.budget
    url, sent_enough = slow_mirror
    repo = _clone(template, tmp_path)
    env = {**_env(repo), "MNIST_MIRROR": url}  # the slow mirror is tried first
    run = repros(["split"], repo, env, tmp_path / "killed.log", budget)
    run.wait_for(sent_enough.is_set, "32 KB of train-images streamed")
    assert run.kill(signal.SIGKILL) == -signal.SIGKILL

    assert not (repo / "dvc.lock").exists(), "dvc.lock was written for a killed stage"
    assert _cache_files(repo) == set(), "something reached the DVC cache"
    raw = repo / "data/raw"
    for p in raw.iterdir() if raw.exists() else []:
        # Only complete, verified files may exist (from before the kill): no partial, no temp file.
        assert p.name in sha and _sha(p) == sha[p.name], f"partial/stray file {p.name}"
    status = _run(["dvc", "status", "--with-deps", "split"], repo, _env(repo), budget)
    assert "download" in status and "up to date" not in status

    _run(["dvc", "repro", "split"], repo, _env(repo), budget)  # back on the good (local) mirror
    assert {p: _sha(raw / p) for p in RAW_NAMES} == sha
    assert _sha(repo / "data/processed/mnist.npz") == base["data/processed/mnist.npz"]
    assert _json(repo / "data/processed/stats.json") == base["data/processed/stats.json"]
    assert _lock_stages(repo)["split"] == _lock_stages(base_repo)["split"]
    _assert_committed_dirs_clean(repo)


def _runs(repo: Path) -> dict[str, str]:
    """Every MLflow run in ``repo``'s sqlite store: run id -> status."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return {r.info.run_id: r.info.status for r in runs}


def _temp_checkpoints(tmpdir: Path) -> list[Path]:
    # training.py keeps Lightning's checkpoints in a mkdtemp dir under $TMPDIR until the end.
    return list(tmpdir.glob("mnist-ckpt-*/*.ckpt"))


@pytest.mark.slow
@pytest.mark.timeout(HANG_S, func_only=True)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_kill_during_training_then_rerun_is_identical(baseline, repros, tmp_path, sig):
    """SIGINT: Lightning's graceful shutdown must still fail the stage (no checkpoint, no lock).

    dvc.lock still describes the last good run, so after SIGINT a plain repro checks
    those outputs out of the cache; after SIGKILL the test forces a retrain, which
    shows that CPU training with a fixed seed is deterministic.
    """
    base_repo, base, budget = baseline.repo, baseline.outputs, baseline.budget
    repo = _clone(base_repo, tmp_path)
    lock_before = (repo / "dvc.lock").read_bytes()
    cache_before = _cache_files(repo)
    old_ckpt = _sha(repo / "models/model.ckpt")
    runs_before = _runs(repo)  # the shared repo's earlier tests may have logged runs too
    tmpdir = tmp_path / "tmp"
    env = _env(repo, tmpdir)
    paused = tmp_path / "paused"  # the train stage writes it, then waits until it is deleted
    paused_env = {**env, PAUSE_ENV: f"checkpoint:{paused}"}  # only for the run to kill
    run = repros(
        ["--force", "--single-item", "train"], repo, paused_env, tmp_path / "killed.log", budget
    )
    run.wait_for(paused.exists, "training to pause after its epoch-1 checkpoint")
    assert _temp_checkpoints(tmpdir), "paused, yet no checkpoint on disk"
    assert run.kill(sig) != 0, run.text()

    assert (repo / "dvc.lock").read_bytes() == lock_before, "dvc.lock changed for a killed stage"
    assert _cache_files(repo) == cache_before, "the killed stage's outputs reached the cache"
    ckpt = repo / "models/model.ckpt"
    assert not ckpt.exists() or _sha(ckpt) == old_ckpt, "a half-trained checkpoint at the target"
    declared = {".gitignore", "model.ckpt", "run.json", "model.onnx", "model.json",
                "model.int8.onnx", "model.int8.json", "served.json", "champion"}  # fmt: skip
    strays = [p.name for p in (repo / "models").iterdir() if p.name not in declared]
    assert not strays, strays
    if sig == signal.SIGINT:  # clean-up ran: Lightning's temp checkpoints are gone
        assert not list(tmpdir.glob("mnist-ckpt-*")), "temp checkpoint dir left behind"
    runs = _runs(repo)  # the killed run is the one new run, and it is not FINISHED
    assert runs.keys() - runs_before.keys() and len(runs) == len(runs_before) + 1, runs
    assert [runs[r] for r in runs.keys() - runs_before.keys()] != ["FINISHED"], runs
    assert {r: runs[r] for r in runs_before} == runs_before, "an earlier run changed status"

    if sig == signal.SIGINT:
        out = _run(["dvc", "repro", "export"], repo, env, budget)
        assert "Stage 'train' is cached" in out or "Running stage 'train'" in out, out
        assert _outputs(repo) == base
        assert "up to date" in _run(["dvc", "status", "--with-deps", "export"], repo, env, budget)
    else:
        # The lock still matches, so a plain repro would just check the old outputs out.
        out = _run(["dvc", "repro", "--force", "--single-item", "train"], repo, env, budget)
        assert "Running stage 'train'" in out, out
        got = _outputs(repo, downstream=False)
        assert got == {k: v for k, v in base.items() if k in got}


@pytest.mark.slow
@pytest.mark.timeout(HANG_S, func_only=True)
def test_kill_during_export_then_rerun_is_identical(baseline, repros, tmp_path):
    base_repo, base, budget = baseline.repo, baseline.outputs, baseline.budget
    repo = _clone(base_repo, tmp_path)
    lock_before = (repo / "dvc.lock").read_bytes()
    cache_before = _cache_files(repo)
    models = repo / "models"
    # export_and_verify writes .model.staging.onnx and checks parity before the rename.
    paused = tmp_path / "paused"
    env = {**_env(repo), PAUSE_ENV: f"onnx-staged:{paused}"}
    run = repros(["--force", "--single-item", "export"], repo, env, tmp_path / "killed.log", budget)
    run.wait_for(paused.exists, "export to pause with its ONNX staging file written")
    assert (models / ".model.staging.onnx").is_file(), sorted(p.name for p in models.iterdir())
    assert run.kill(signal.SIGKILL) == -signal.SIGKILL

    assert (repo / "dvc.lock").read_bytes() == lock_before, "dvc.lock changed for a killed stage"
    assert _cache_files(repo) == cache_before, "the killed stage's outputs reached the cache"
    onnx = models / "model.onnx"
    assert not onnx.exists() or _sha(onnx) == base["models/model.onnx"], "half-written model.onnx"

    out = _run(["dvc", "repro", "export"], repo, _env(repo), budget)
    assert "Running stage 'export'" in out and "Running stage 'train'" not in out
    assert _outputs(repo) == base
    assert not list(models.glob(".model*")), "staging files left after a clean rerun"
    meta = json.loads((models / "model.json").read_text())
    assert meta["sha256"] == base["models/model.onnx"]


# --------------------------------------------------------------------------- corrupt inputs


def _assert_clean_error(proc: subprocess.CompletedProcess, names: str) -> None:
    """Exit 2, exactly one stderr line, starting 'error:', naming the file; no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert names in lines[0], (names, lines[0])


@pytest.fixture(scope="module")
def good_raw(tmp_path_factory, synthetic_mirror) -> Path:
    folder, _ = synthetic_mirror
    raw = tmp_path_factory.mktemp("good_raw")
    for name in RAW_NAMES:
        (raw / name).write_bytes(gzip.decompress((folder / f"{name}.gz").read_bytes()))
    return raw


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _wrong_magic(data: bytes) -> bytes:
    return b"\x08\x03\x00\x00" + data[4:]


def _labels_out_of_range(data: bytes) -> bytes:
    return data[:8] + bytes([12]) + data[9:]


def _gzipped(data: bytes) -> bytes:
    return gzip.compress(data)  # a user who forgot to decompress


def _few_labels(data: bytes) -> bytes:
    return encode_idx(np.zeros(7, np.uint8))


def _wrong_image_shape(data: bytes) -> bytes:
    return encode_idx(np.zeros((400, 27, 29), np.uint8))


def _empty(data: bytes) -> bytes:
    return b""


RAW_FAULTS = [
    ("train-images-idx3-ubyte", _truncate),
    ("t10k-images-idx3-ubyte", _wrong_magic),
    ("train-labels-idx1-ubyte", _labels_out_of_range),
    ("t10k-labels-idx1-ubyte", _gzipped),
    ("train-labels-idx1-ubyte", _few_labels),
    ("train-images-idx3-ubyte", _wrong_image_shape),
    ("t10k-labels-idx1-ubyte", _empty),
    ("t10k-images-idx3-ubyte", None),  # missing
]


@pytest.mark.parametrize(
    ("name", "corrupt"),
    RAW_FAULTS,
    ids=[f"{n}-{c.__name__.strip('_') if c else 'missing'}" for n, c in RAW_FAULTS],
)
def test_split_names_the_corrupt_raw_file(
    good_raw, tmp_path, name, corrupt, params_writer, stage_cli
):
    raw = tmp_path / "raw"
    shutil.copytree(good_raw, raw)
    if corrupt is None:
        (raw / name).unlink()
    else:
        (raw / name).write_bytes(corrupt((raw / name).read_bytes()))
    params_writer(tmp_path / "params.yaml", split={"val_size": 100})
    proc = stage_cli("split", str(raw), str(tmp_path / "processed"), cwd=tmp_path)
    _assert_clean_error(proc, str(raw / name))
    assert not (tmp_path / "processed" / "mnist.npz").exists()


def _npz(path: Path, **override: np.ndarray) -> None:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(override)
    with path.open("wb") as f:
        np.savez(f, **arrays)


# (stage, file to break, how) -- each stage CLI meets a different broken file.
PROCESSED_FAULTS = [
    ("train", "mnist.npz", lambda p: p.write_bytes(os.urandom(4096))),
    ("evaluate", "stats.json", lambda p: p.write_text('{"mean": NaN, "std": 0.3}')),
    ("export", "mnist.npz", lambda p: p.write_bytes(_truncate(p.read_bytes()))),
    (
        "export",
        "mnist.npz",
        lambda p: _npz(p, x_test=np.zeros((5, 28, 28), np.float32), y_test=np.zeros(5, np.int64)),
    ),
    ("export", "stats.json", lambda p: p.write_text("[1, 2")),
    ("export", "model.ckpt", lambda p: p.write_bytes(_truncate(p.read_bytes()))),
    pytest.param(
        "export",
        "model.ckpt",
        lambda p: __import__("torch").save({"epoch": 1}, p),
    ),
]


@pytest.mark.slow
@pytest.mark.timeout(HANG_S, func_only=True)
@pytest.mark.parametrize(
    ("stage", "broken", "corrupt"),
    PROCESSED_FAULTS,
    ids=[
        f"{p.values[0] if hasattr(p, 'values') else p[0]}-"
        f"{p.values[1] if hasattr(p, 'values') else p[1]}-{i}"
        for i, p in enumerate(PROCESSED_FAULTS)
    ],
)
def test_stage_names_the_corrupt_processed_file(
    baseline, tmp_path, stage, broken, corrupt, stage_cli
):
    base_repo = baseline.repo
    processed, models = tmp_path / "processed", tmp_path / "models"
    shutil.copytree(base_repo / "data/processed", processed)
    models.mkdir()
    for f in ("model.ckpt", "run.json"):
        shutil.copy(base_repo / "models" / f, models / f)
    shutil.copy(base_repo / "params.yaml", tmp_path / "params.yaml")
    target = (models if broken == "model.ckpt" else processed) / broken
    corrupt(target)
    args = {
        "train": [
            str(processed),
            str(models / "new.ckpt"),
            "--metrics",
            "m.json",
            "--curve",
            "c.csv",
        ],
        "evaluate": [str(models / "model.ckpt"), str(processed)],
        "export": [str(models / "model.ckpt"), str(processed), str(models / "model.onnx")],
    }[stage]
    proc = stage_cli(stage, *args, cwd=tmp_path, timeout=baseline.budget)
    _assert_clean_error(proc, str(target))
    assert not (models / "new.ckpt").exists() and not (models / "model.onnx").exists()
    assert not (tmp_path / "metrics").exists()
