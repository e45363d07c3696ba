"""No acknowledged correction is lost or doubled when an API worker is SIGKILLed mid-stream.

A real ``bentoml serve`` with two API workers, a temporary inference log and a temporary
SQLite store answers 2,000 distinct digits; 8 client threads then send a correction for
each (a new connection per request, so both workers take them), and once exactly 700 have
been answered 200 one of the two workers is SIGKILLed. Clients retry what failed with a
connection error or a 5xx, as a real client would, until a definite answer. Then every
request id answered 200 is in the store exactly once with its digit, and in the export
(``python -m pipeline.corrections``) exactly once, in train or holdout, with that digit.

Only HTTP, the store's read API and the export CLI are used, so the test holds however
the store keeps a correction's input. Every wait is on a condition, never a sleep.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import signal
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from mnist_mlops.corrections.dataset import PARTS, load_part
from mnist_mlops.data.idx import parse_idx
from mnist_mlops.monitoring.corrections_store import CorrectionsStore
from support import ROOT
from support.bento_process import Served, serving
from support.stages import run_stage_cli

pytestmark = pytest.mark.slow

IMAGES = 2000
BATCH = 250  # images per /predict_npy request (the service takes up to 256)
CLIENTS = 8
KILL_AFTER = 700  # acknowledged corrections when one worker is killed
TRIES = 10  # per correction: the first send and up to 9 retries
WAIT_S = 60  # a hang guard: each wait ends as soon as its condition holds
WORKER_MODULE = "_bentoml_impl.worker.service"  # what BentoML's API worker processes run
MNIST_TEST = ROOT.parent / "shared" / "mnist"
INDEX = "mnist_logged_requests"  # the store's table of logged requests


def distinct_digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct 28x28 uint8 images and a digit for each: MNIST test digits with their
    labels when ../shared/mnist is beside the checkout, else seeded random arrays."""
    images_gz = MNIST_TEST / "t10k-images-idx3-ubyte.gz"
    if images_gz.exists():
        x = parse_idx(gzip.decompress(images_gz.read_bytes()))
        y = parse_idx(gzip.decompress((MNIST_TEST / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    else:
        rng = np.random.default_rng(27)
        x = rng.integers(0, 256, size=(2 * n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=2 * n)
    _, first = np.unique(x.reshape(len(x), -1), axis=0, return_index=True)
    keep = np.sort(first)[:n]  # the export keeps one copy of identical images
    assert len(keep) == n
    return np.ascontiguousarray(x[keep], np.uint8), y[keep].astype(np.int64)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, untrained MLP exported with the project's exporter (its answers do not
    matter here: only that each image is answered and logged)."""
    import torch

    from mnist_mlops.export.to_onnx import export_onnx
    from mnist_mlops.inference.model_card import ModelCard
    from mnist_mlops.train.network import MLP

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    export_onnx(MLP(hidden=(32,)), path)
    ModelCard.for_model(path, mean=0.1307, std=0.3081).write_beside(path)
    return path


def predict(url: str, x: np.ndarray) -> list[str]:
    """The request ids of ``x``'s answers, in order, from /predict_npy."""
    ids: list[str] = []
    headers = {"content-type": "application/x-npy", "accept": "application/x-npy"}
    with httpx.Client(base_url=url, timeout=60) as client:
        for start in range(0, len(x), BATCH):
            buffer = io.BytesIO()
            np.save(buffer, x[start : start + BATCH])
            answer = client.post("/predict_npy", content=buffer.getvalue(), headers=headers)
            assert answer.status_code == 200, answer.text
            rows = np.load(io.BytesIO(answer.content), allow_pickle=False)
            ids.extend(i.decode() for i in rows["request_id"])
    return ids


def wait_until_indexed(db: Path, ids: list[str]) -> None:
    """Poll the store's logged-request index until it names every id (a row holds the
    id itself or the key its request's ids start with)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        keys: set[str] = set()
        if db.exists():
            conn = sqlite3.connect(db, timeout=10)
            # Not there yet: the table (no worker has written its index yet).
            with contextlib.closing(conn), contextlib.suppress(sqlite3.OperationalError):
                keys = {r[0] for r in conn.execute("SELECT request_id FROM " + INDEX)}
        lengths = {len(k) for k in keys}
        missing = [i for i in ids if not any(i[:n] in keys for n in lengths)]
        if not missing:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{len(missing)} of {len(ids)} request ids not in the index")
        time.sleep(0.1)


def api_workers(served: Served) -> list[psutil.Process]:
    """The serve process's API worker processes (not the arbiter itself), by worker id."""
    found = []
    for child in psutil.Process(served.proc.pid).children(recursive=True):
        try:
            command = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if WORKER_MODULE in command and "--worker-id" in command:
            found.append((command[command.index("--worker-id") + 1], child))
    return [process for _, process in sorted(found, key=lambda wp: wp[0])]


def two_workers(served: Served, without: int | None = None) -> list[psutil.Process]:
    """Poll until the server runs two API workers, none of them the process ``without``."""
    deadline = time.monotonic() + WAIT_S
    while True:
        workers = api_workers(served)
        if len(workers) == 2 and without not in {w.pid for w in workers}:
            return workers
        assert time.monotonic() < deadline, f"workers: {[w.pid for w in workers]}"
        time.sleep(0.1)


@dataclass
class Feedback:
    """What the clients saw: the final status of each id, and the trouble on the way."""

    served: Served
    status: dict[str, int] = field(default_factory=dict)
    duplicate_answers: int = 0  # 200s saying this correction had been stored before
    retries: int = 0
    transport_errors: Counter = field(default_factory=Counter)
    server_errors: Counter = field(default_factory=Counter)
    acknowledged: int = 0
    killed: psutil.Process | None = None
    acked_at_kill: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_answer(self, request_id: str, answer: httpx.Response) -> None:
        with self.lock:
            self.status[request_id] = answer.status_code
            if answer.status_code != 200:
                return
            self.duplicate_answers += bool(answer.json().get("duplicate"))
            self.acknowledged += 1
            if self.acknowledged == KILL_AFTER:  # under the lock: exactly this many so far
                self.killed = api_workers(self.served)[0]
                self.killed.send_signal(signal.SIGKILL)
                self.acked_at_kill = self.acknowledged

    def send(self, work: list[tuple[str, int]]) -> None:
        """One client: each correction until a definite answer (no 5xx, no broken
        connection) or TRIES sends; a new connection for every request."""
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.served.url, timeout=30, limits=limits) as client:
            for request_id, digit in work:
                for attempt in range(TRIES):
                    if attempt:
                        with self.lock:
                            self.retries += 1
                    try:
                        answer = client.post(
                            "/feedback", json={"request_id": request_id, "digit": digit}
                        )
                    except httpx.TransportError as exc:
                        with self.lock:
                            self.transport_errors[type(exc).__name__] += 1
                        continue
                    if answer.status_code >= 500:
                        with self.lock:
                            self.server_errors[answer.status_code] += 1
                        continue
                    self.on_answer(request_id, answer)
                    break


def test_no_acknowledged_correction_is_lost_or_doubled_when_a_worker_is_killed(model, tmp_path):
    started = time.monotonic()
    home, logs, db = tmp_path / "svc", tmp_path / "svc" / "inference", tmp_path / "fb.sqlite"
    store_uri = f"sqlite:///{db}"
    env = {
        "MNIST_API_WORKERS": "2",
        "MNIST_INFERENCE_LOG_DIR": str(logs),
        "MNIST_FEEDBACK_DB": store_uri,
        "MNIST_FEEDBACK_RATE": "1000000",  # far above what 8 clients send: never a 429
        "MNIST_FEEDBACK_BURST": "1000000",
    }
    x, digits = distinct_digits(IMAGES)
    with serving(model, home / "bentoml", **env) as served:
        workers = two_workers(served)
        ids = predict(served.url, x)
        assert len(set(ids)) == IMAGES
        wait_until_indexed(db, ids)

        feedback = Feedback(served)
        work = list(zip(ids, digits.tolist()))
        threads = [
            threading.Thread(target=feedback.send, args=(work[i::CLIENTS],), daemon=True)
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=WAIT_S * 2)
        assert not any(t.is_alive() for t in threads), "a client hung"
        assert feedback.killed is not None, f"only {feedback.acknowledged} acknowledged"
        killed = feedback.killed
        # The arbiter starts a new worker in the killed one's place.
        replaced = two_workers(served, without=killed.pid)
        new_pid = next(w.pid for w in replaced if w.pid not in {p.pid for p in workers})
    served_s = time.monotonic() - started

    sent = {request_id: digit for request_id, digit in work}
    acked = {i for i, status in feedback.status.items() if status == 200}
    report = {
        "sent": len(sent),
        "acknowledged_200": len(acked),
        "other_final_status": dict(Counter(s for s in feedback.status.values() if s != 200)),
        "no_definite_answer": len(sent) - len(feedback.status),
        "retries": feedback.retries,
        "transport_errors": dict(feedback.transport_errors),
        "server_errors": dict(feedback.server_errors),
        "duplicate_answers": feedback.duplicate_answers,
        "acknowledged_at_kill": feedback.acked_at_kill,
        "killed_pid": killed.pid,
        "replaced_by_pid": new_pid,
    }

    # The store: every acknowledged id once, with its digit; nothing twice; nothing unsent.
    store = CorrectionsStore(store_uri)
    try:
        stored = store.corrections()
    finally:
        store.close()
    times = Counter(row.request_id for row in stored)
    doubled = {i: n for i, n in times.items() if n > 1}
    lost = sorted(acked - set(times))
    wrong = {r.request_id: r.digit for r in stored
             if r.request_id in acked and r.digit != sent[r.request_id]}  # fmt: skip
    report.update(stored=len(stored), lost_in_store=len(lost), doubled_in_store=len(doubled))
    print("sigkill (store):", json.dumps(report))
    assert not lost, f"{len(lost)} acknowledged corrections not in the store: {lost[:5]}"
    assert not doubled, f"ids stored more than once: {list(doubled.items())[:5]}"
    assert not wrong, f"stored with another digit than sent: {list(wrong.items())[:5]}"
    assert set(times) <= set(sent), "the store holds corrections nobody sent"

    # The export: every acknowledged id in train or holdout exactly once, with its digit.
    out = tmp_path / "export"
    proc = run_stage_cli(
        "corrections", str(out), "--store", store_uri, "--log-dir", str(logs), timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported: Counter = Counter()
    exported_digit: dict[str, int] = {}
    for part in PARTS:
        data = load_part(out, part)
        for request_id, digit in zip(data.request_id.tolist(), data.y.tolist()):
            exported[request_id] += 1
            exported_digit[request_id] = digit
    summary = json.loads((out / "summary.json").read_text())
    missing = sorted(acked - set(exported))
    report.update(
        exported=summary["parts"],
        lost_in_export=len(missing),
        export_line=proc.stdout.strip().splitlines()[-1],
        seconds=round(time.monotonic() - started, 1),
        served_seconds=round(served_s, 1),
    )
    print("sigkill (export):", json.dumps(report))
    assert not missing, f"{len(missing)} acknowledged corrections not exported: {missing[:5]}"
    assert not [i for i, n in exported.items() if n > 1], "ids exported more than once"
    assert all(exported_digit[i] == sent[i] for i in acked), "exported with another digit"
    assert set(exported) <= set(sent)
    # And nothing was left unanswered: every correction was acknowledged in the end.
    assert acked == set(sent), report
