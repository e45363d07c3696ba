"""The serving image, built and run with podman as a user without Docker would (README).

scripts/podman_image.sh builds the Dockerfile on a Debian base it makes with mmdebstrap
(cached between runs, as are the image's layers), with a model trained by the real
pipeline baked in as the champion stage leaves it (models/champion: the chosen artifact
with its card, ``served.json`` and the smoke set; made here from the trained model, int8
chosen, when the repo has none). The container then serves the chosen artifact on a free
loopback port (host network) and must answer like the service does, as the non-root user,
without torch, and stop on SIGTERM within its grace period. Needs podman, runc and
mmdebstrap as root (scripts/install_system_packages.sh installs them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.inference.serving_choice import CHOICE_NAME, resolve_artifact
from support.bento_process import free_port
from support.serving_image import SCRIPT, Container, instructions, podman

UID = 10001
GRACE_S = 30  # podman stop's SIGTERM -> SIGKILL grace period, as Kubernetes' default


def test_dockerfile_installs_the_lock_as_non_root_with_a_health_check():
    steps = instructions()
    kinds = [k for k, _ in steps]
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")  # what Docker users get
    assert ("FROM", "${BASE_IMAGE}") in steps
    user = [v for k, v in steps if k == "USER"]
    assert user and user[-1].split(":")[0] == str(UID)
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")
    assert "/readyz" in next(v for k, v in steps if k == "HEALTHCHECK")
    installs = " ".join(v for k, v in steps if k == "RUN")
    assert "--require-hashes -r requirements/serve.txt" in installs
    assert "torch" not in installs


@pytest.fixture(scope="module")
def container(serving_image: str) -> Iterator[Container]:
    port = free_port()
    served = Container(f"mnist-mlops-test-{port}", port)
    podman("rm", "-f", served.name, check=False)
    subprocess.run(
        ["bash", str(SCRIPT), "run", serving_image, "-d", "--name", served.name],
        env={**os.environ, "BENTOML_PORT": str(port)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        served.wait_ready()
        yield served
    finally:
        podman("rm", "-f", "--time", "0", served.name, check=False)


@pytest.mark.slow
def test_container_is_ready_and_healthy(container):
    assert httpx.get(f"{container.url}/readyz", timeout=5).status_code == 200
    assert podman("healthcheck", "run", container.name, check=False).returncode == 0


@pytest.mark.slow
def test_container_predicts_a_drawn_digit_with_the_chosen_artifact(
    container, digit_png, champion_folder
):
    files = {"image": ("seven.png", digit_png, "image/png")}
    reply = httpx.post(f"{container.url}/predict", files=files, timeout=30)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["digit"] == 7, body
    card = ModelCard.read_beside(resolve_artifact(champion_folder / CHOICE_NAME))
    assert (body["model_version"], body["model_precision"]) == (card.version, card.precision)
    ready = httpx.get(f"{container.url}/readyz", timeout=5).json()
    assert ready["model_precision"] == card.precision


READ_LOG = (
    "import json, pathlib; from mnist_mlops.monitoring.log_reader import read_log; "
    "print(json.dumps([r['request_id'] for r in read_log(pathlib.Path('/app/monitoring/inference'))"
    " if r['time'].year > 2000]))"
)


@pytest.mark.slow
def test_container_logs_the_answer_and_takes_its_correction(container, digit_png):
    """The non-root user can write the inference log and the corrections store in the
    image's /app/monitoring volume: a correction of the answer is found (200), not 404/503."""
    files = {"image": ("seven.png", digit_png, "image/png")}
    answer = httpx.post(f"{container.url}/predict", files=files, timeout=30).json()
    body = {"request_id": answer["request_id"], "digit": 1}
    reply = httpx.post(f"{container.url}/feedback", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    # The image's own reader (no tz database in the slim image): every logged request id.
    logged: list[str] = []
    deadline = time.monotonic() + 60
    while answer["request_id"] not in logged:  # the writer flushes on its own clock
        assert time.monotonic() < deadline, f"{answer['request_id']} never logged: {logged}"
        time.sleep(0.5)
        logged = json.loads(container.exec("python", "-c", READ_LOG))
    assert "feedback.sqlite" in container.exec("ls", "/app/monitoring")


@pytest.mark.slow
def test_container_runs_as_the_non_root_user(container):
    status = container.exec("cat", "/proc/1/status")  # PID 1 is the server itself
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M)[1].split()
    assert uids == [str(UID)] * 4, status
    assert container.exec("id", "-u").strip() == str(UID)


@pytest.mark.slow
def test_container_has_no_torch(container):
    probe = (
        "import importlib.util as u; "
        "print(u.find_spec('torch') is None, u.find_spec('onnxruntime') is not None)"
    )
    assert container.exec("python", "-c", probe).split() == ["True", "True"]


@pytest.mark.slow
def test_container_stops_cleanly_on_sigterm(container):
    """Last in this module: it stops the container the others share."""
    started = time.monotonic()
    podman("stop", "--time", str(GRACE_S), container.name, timeout=GRACE_S + 60)
    took = time.monotonic() - started
    state = container.state()
    code = state["ExitCode"]
    assert code == 0, f"exit {code} after {took:.1f} s:\n{container.logs()}"
    assert took < GRACE_S, f"needed SIGKILL: {took:.1f} s >= {GRACE_S} s grace"
