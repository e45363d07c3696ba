"""The registry's challenger beside the champion in a real ``bentoml serve``: shadow scores
every request with both and answers with the champion; canary answers a stable share of
clients (by the X-Client-Id header) with the challenger. Answers, /readyz and the log say
which model answered and what the other said."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from mnist_mlops.monitoring.log_reader import read_log
from serving.model_loading import load_model
from serving.model_pair import canary_answers
from serving.schemas import example_pixels
from support.bento_process import serving
from support.registry import register_version
from support.versions import version_files

pytestmark = pytest.mark.slow

MODEL = "mnist-mlp"
WAIT_S = 60  # the log's writer flushes every 0.2 s; a hang guard, not a pause


@pytest.fixture(scope="module")
def registry(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A registry whose champion (v1) and challenger (v2, another seed: other answers) are
    both set; the files and URIs the tests need."""
    root = tmp_path_factory.mktemp("challenger")
    files = version_files(model_path, root / "versions")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    register_version(uri, MODEL, files["a"], alias="champion")
    register_version(uri, MODEL, files["other"], alias="challenger")
    return {"uri": uri, "smoke": str(files["smoke"]), "champion": str(files["a"]),
            "challenger": str(files["other"]), "root": str(root)}  # fmt: skip


def start(registry: dict[str, str], mode: str, home: Path, **extra: str):
    env = {
        "MNIST_MODEL_URI": f"models:/{MODEL}@champion",
        "MLFLOW_TRACKING_URI": registry["uri"],
        "MNIST_SMOKE_PATH": registry["smoke"],
        "MNIST_SMOKE_MIN_ACCURACY": "0",  # the challenger is another model, not a better one
        "MNIST_CHALLENGER": mode,
        "MNIST_INFERENCE_LOG_DIR": str(home / "inference"),
        "MNIST_FEEDBACK_DB": f"sqlite:///{home / 'feedback.sqlite'}",
        **extra,
    }
    return serving(None, home / "bentoml", **env)


def logged(folder: Path, ids: list[str]) -> dict[str, dict]:
    deadline = time.monotonic() + WAIT_S
    while True:
        records = {r["request_id"]: r for r in read_log(folder)}
        if set(ids) <= set(records):
            return records
        assert time.monotonic() < deadline, f"{len(set(ids) - set(records))} ids not logged"
        time.sleep(0.1)


def test_shadow_answers_with_the_champion_and_logs_the_challengers_answer(registry, tmp_path):
    pixels = np.asarray(example_pixels(), np.float32)
    images = [pixels, pixels[::-1], pixels.T, 255 - pixels]
    with start(registry, "shadow", tmp_path) as served, httpx.Client(base_url=served.url) as c:
        ready = c.get("/readyz").json()
        batch = c.post("/predict_batch", json={"images": [i.tolist() for i in images]})
    assert batch.status_code == 200, batch.text
    answers = batch.json()["predictions"]
    assert {(a["model_role"], a["model_source"]) for a in answers} == {
        ("champion", f"models:/{MODEL}@champion v1")
    }
    assert ready["challenger_mode"] == "shadow"
    assert ready["challenger"]["model_source"] == f"models:/{MODEL}@challenger v2"
    challenger = load_model(registry["challenger"])
    expected = challenger.probabilities(np.stack(images))
    records = logged(tmp_path / "inference", [a["request_id"] for a in answers])
    for answer, row in zip(answers, expected):
        record = records[answer["request_id"]]
        assert (record["model_role"], record["registry_version"]) == ("champion", "1")
        assert (record["shadow_role"], record["shadow_version"]) == (
            "challenger",
            challenger.version,
        )
        assert record["shadow_digit"] == int(row.argmax())
        assert record["shadow_confidence"] == pytest.approx(float(row.max()))
        assert record["digit"] == answer["digit"]


def test_canary_answers_a_stable_share_of_clients_with_the_challenger(registry, tmp_path):
    clients = [f"client-{i}" for i in range(12)]
    extra = {"MNIST_CANARY_SHARE": "0.5"}
    with (
        start(registry, "canary", tmp_path, **extra) as served,
        httpx.Client(base_url=served.url) as c,
    ):
        answers = {
            client: [c.post("/predict_array", json={"pixels": example_pixels()},
                            headers={"X-Client-Id": client}).json() for _ in range(3)]
            for client in clients
        }  # fmt: skip
        anonymous = [c.post("/predict_array", json={"pixels": example_pixels()}).json()
                     for _ in range(40)]  # fmt: skip
    for client, seen in answers.items():
        expected = "challenger" if canary_answers(client, 0.5) else "champion"
        assert [a["model_role"] for a in seen] == [expected] * 3, client
    roles = {a["model_role"] for seen in answers.values() for a in seen}
    assert roles == {"champion", "challenger"}
    # Without the header each request is keyed by its own id: both models answer some.
    assert {a["model_role"] for a in anonymous} == {"champion", "challenger"}
    every = [a for seen in answers.values() for a in seen] + anonymous
    records = logged(tmp_path / "inference", [a["request_id"] for a in every])
    for answer in every:
        record = records[answer["request_id"]]
        other = {"champion": "challenger", "challenger": "champion"}[answer["model_role"]]
        assert (record["model_role"], record["shadow_role"]) == (answer["model_role"], other)
        assert record["model_version"] == answer["model_version"] != record["shadow_version"]
