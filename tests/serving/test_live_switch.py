"""A running ``bentoml serve`` (2 workers) follows the registry's champion alias under load.

A real load generator (``wrk``, posting /predict_array from a few connections) runs while
the test moves the alias: no request fails, and in each worker's log (one file per worker
pid, records in the order answered) every answer before the switch names the old version
and every one after it the new one. Then the alias moves to a version whose bytes changed
in the artifact store: both workers refuse it (counted on /metrics) and keep serving the
old one. Every wait is on a condition (the log, /metrics), never a sleep.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mnist_mlops.monitoring.log_reader import read_log
from mnist_mlops.monitoring.logfiles import log_files
from serving.schemas import example_pixels
from support.bento_process import serving
from support.registry import register_version, registered_onnx
from support.versions import version_files

pytestmark = pytest.mark.slow

MODEL = "mnist-mlp"
URI = f"models:/{MODEL}@champion"
POLL_S = 0.5
WORKERS = 2
WAIT_S = 120  # a hang guard: each wait ends as soon as its condition holds
# wrk's Lua script: POST /predict_array on kept-alive connections, every tenth request
# closing its connection (so new connections spread over both workers: a worker that
# accepted all of them would leave the other without load); at the end one line of counts.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
local sent = 0
local closing = {["Content-Type"] = "application/json", ["Connection"] = "close"}
request = function()
  sent = sent + 1
  if sent %% 10 == 0 then return wrk.format(nil, nil, closing) end
  return wrk.format()
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%%d non2xx=%%d connect=%%d read=%%d",
    summary.requests, e.status, e.connect, e.read))
  io.write(string.format(" write=%%d timeout=%%d\\n", e.write, e.timeout))
end
"""


@pytest.fixture(scope="module")
def versions(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return version_files(model_path, tmp_path_factory.mktemp("versions"))


def server_env(home: Path, registry: str, smoke: Path, **extra: str) -> dict[str, str]:
    return {
        "MNIST_MODEL_URI": URI,
        "MLFLOW_TRACKING_URI": registry,
        "MNIST_SMOKE_PATH": str(smoke),
        "MNIST_MODEL_POLL_S": str(POLL_S),
        "MNIST_INFERENCE_LOG_DIR": str(home / "inference"),
        "MNIST_LOG_IMAGES": "off",
        "MNIST_FEEDBACK_DB": f"sqlite:///{home / 'feedback.sqlite'}",
        **extra,
    }


def per_worker(folder: Path) -> dict[str, list[dict]]:
    """The log's records by worker (the pid in the file name), in the order written."""
    workers: dict[str, list[dict]] = {}
    for path in log_files(folder):
        pid = path.stem.rsplit("-", 1)[-1]
        workers.setdefault(pid, []).extend(read_log(folder, files=[path]))
    return workers


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def metric(url: str, name: str, **labels: str) -> float:
    """A sample of the service's /metrics (summed over the workers, as it exposes them)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make setup)")
def test_the_alias_moves_under_load_no_request_fails_each_worker_switches_once(versions, tmp_path):
    registry = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register_version(registry, MODEL, versions["a"], alias="champion")
    home, logs = tmp_path / "svc", tmp_path / "svc" / "inference"
    env = server_env(home, registry, versions["smoke"], MNIST_API_WORKERS=str(WORKERS))
    script = tmp_path / "post.lua"
    script.write_text(WRK_SCRIPT % json.dumps({"pixels": example_pixels()}))
    with serving(None, home / "bentoml", **env) as served:
        wrk = subprocess.Popen(
            ["wrk", "-t2", "-c8", "-d600s", "-s", str(script), f"{served.url}/predict_array"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            # Load reaches both workers, each serving v1.
            wait_until(lambda: len(per_worker(logs)) == WORKERS, "records from both workers")
            register_version(registry, MODEL, versions["b"], alias="champion")
            moved = time.time()
            wait_until(lambda: all(any(r["registry_version"] == "2" for r in records)
                                   for records in per_worker(logs).values()),
                       "every worker answering from v2")  # fmt: skip
            # v3's bytes change in the artifact store: refused by both, v2 keeps serving.
            register_version(registry, MODEL, versions["c"], alias="champion")
            corrupted = registered_onnx(registry, MODEL, "3")
            corrupted.write_bytes(corrupted.read_bytes()[:-8] + b"\0" * 8)
            refused = lambda: metric(served.url, "mnist_model_switches_total",  # noqa: E731
                                     outcome="refused")  # fmt: skip
            wait_until(lambda: refused() == WORKERS, "both workers refusing v3")
            after = time.time()
            wait_until(lambda: all(_seconds(records[-1]["time"]) > after
                                   for records in per_worker(logs).values()),
                       "answers after the refusal from every worker")  # fmt: skip
            ready = httpx.get(f"{served.url}/readyz", timeout=10).json()
        finally:
            wrk.send_signal(signal.SIGINT)  # wrk prints its summary and exits
            output, _ = wrk.communicate(timeout=60)
        switched = metric(served.url, "mnist_model_switches_total", outcome="switched")
        # Which version each worker serves (1) and which it replaced (0), one series a worker.
        serving_now = {v: metric(served.url, "mnist_model_serving", registry_version=v)
                       for v in ("1", "2", "3")}  # fmt: skip
        server_log = served.log.read_text(errors="replace")
    counts = dict(re.findall(r"(\w+)=(\d+)", output.split("RESULT", 1)[-1]))
    assert counts and int(counts["requests"]) > 0, output
    assert {k: int(v) for k, v in counts.items() if k != "requests"} == {
        "non2xx": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0,
    }, output  # fmt: skip
    assert switched == 2 * WORKERS  # v1 at start, then v2, in each worker
    assert serving_now == {"1": 0, "2": WORKERS, "3": 0}
    assert (ready["model_source"], ready["model_role"]) == (f"{URI} v2", "champion")
    report = {"requests": int(counts["requests"]), "switch_s": {}}
    for pid, records in per_worker(logs).items():
        order = [r["registry_version"] for r in records]
        first_new = order.index("2")
        assert set(order[:first_new]) == {"1"} and set(order[first_new:]) == {"2"}, pid
        report["switch_s"][pid] = _seconds(records[first_new]["time"]) - moved
    assert "refused mnist-mlp v3" in server_log and "hash mismatch" in server_log
    print("live switch:", json.dumps(report))  # the numbers the closing note reports


def _seconds(when: datetime) -> float:
    return when.timestamp()
