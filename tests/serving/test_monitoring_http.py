"""The inference log and POST /feedback through a real ``bentoml serve`` on loopback.

Every answer carries a request id that the log records once, with its route and
source; corrections are stored in the real SQLite file the service was pointed at.
A second server logs into a folder that cannot exist (its path runs through a regular
file) and has a tiny feedback rate bound: it still answers every prediction, counts
the lost records on /metrics, says so once in its log, and answers a flood with 429
(with Retry-After), whatever client the flood's X-Forwarded-For names.
No sleeps for synchronisation: tests poll the log or /metrics for what they expect.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mnist_mlops.monitoring.corrections_store import CorrectionsStore
from mnist_mlops.monitoring.log_reader import ReadCounts, read_log
from serving.schemas import example_pixels
from support.bento_process import REPO, Served, serving

pytestmark = pytest.mark.slow

WAIT_S = 60  # for the writer thread (it writes every 0.2 s) on a loaded machine
PIXELS = {"pixels": example_pixels()}


def wait_for_records(folder: Path, ids: list[str]) -> dict[str, dict]:
    """Poll the log until every id in ``ids`` is there; return the records by id."""
    deadline = time.monotonic() + WAIT_S
    while True:
        records = {r["request_id"]: r for r in read_log(folder)}
        if set(ids) <= set(records):
            return records
        if time.monotonic() > deadline:
            pytest.fail(f"{len(set(ids) - set(records))} of {len(ids)} ids not logged")
        time.sleep(0.2)


def metric_samples(url: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, from the service's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def wait_for_metric(url: str, name: str, labels: dict[str, str], value: float) -> None:
    deadline = time.monotonic() + WAIT_S
    key = (name, tuple(sorted(labels.items())))
    while metric_samples(url).get(key) != value:
        if time.monotonic() > deadline:
            pytest.fail(f"{name}{labels} is {metric_samples(url).get(key)}, not {value}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Monitored:
    """A running service and the folder of its log (``inference/``) and store."""

    url: str
    home: Path


@pytest.fixture(scope="module")
def served(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    home = tmp_path_factory.mktemp("monitored")
    env = {"MNIST_INFERENCE_LOG_DIR": str(home / "inference"),
           "MNIST_FEEDBACK_DB": f"sqlite:///{home / 'feedback.sqlite'}"}  # fmt: skip
    with serving(model_path, home / "bentoml", **env) as server:
        yield Monitored(server.url, home)


def test_every_answer_is_logged_once_with_its_route_and_source(served, digit_png):
    with httpx.Client(base_url=served.url, timeout=30) as client:
        upload = client.post("/predict", files={"image": ("d.png", digit_png, "image/png")})
        ui = client.post("/predict", files={"image": ("d.png", digit_png, "image/png")},
                         headers={"X-Mnist-Source": "ui"})  # fmt: skip
        array = client.post("/predict_array", json=PIXELS)
        batch = client.post("/predict_batch", json={"images": [example_pixels()] * 3})
    answers = [upload.json(), ui.json(), array.json(), *batch.json()["predictions"]]
    ids = [a["request_id"] for a in answers]
    assert len(set(ids)) == 6
    records = wait_for_records(served.home / "inference", ids)
    seen = [(records[i]["endpoint"], records[i]["source"]) for i in ids]
    assert (
        seen
        == [("/predict", "upload"), ("/predict", "ui"), ("/predict_array", "json")]
        + [("/predict_batch", "batch")] * 3
    )
    for answer in answers:
        record = records[answer["request_id"]]
        assert record["digit"] == answer["digit"]
        assert record["confidence"] == pytest.approx(max(answer["probabilities"]))
        assert record["model_version"] == answer["model_version"]
        assert record["input"] is not None and len(record["input"]) == 784


def test_stores_a_correction_once(served):
    with httpx.Client(base_url=served.url, timeout=30) as client:
        request_id = client.post("/predict_array", json=PIXELS).json()["request_id"]
        wait_for_records(served.home / "inference", [request_id])
        first = client.post("/feedback", json={"request_id": request_id, "digit": 4})
        again = client.post("/feedback", json={"request_id": request_id, "digit": 4})
    assert first.status_code == again.status_code == 200
    assert first.json() == {"request_id": request_id, "digit": 4, "duplicate": False}
    assert again.json()["duplicate"] is True
    store = CorrectionsStore(f"sqlite:///{served.home / 'feedback.sqlite'}")
    assert [(r[0], r[1]) for r in store.corrections() if r[0] == request_id] == [(request_id, 4)]


def test_ids_of_the_binary_npy_answer_are_logged_and_take_feedback(served):
    pixels = np.stack([np.array(example_pixels(), np.uint8)] * 3)
    buffer = io.BytesIO()
    np.save(buffer, pixels)
    headers = {"content-type": "application/x-npy", "accept": "application/x-npy"}
    with httpx.Client(base_url=served.url, timeout=30) as client:
        answer = client.post("/predict_npy", content=buffer.getvalue(), headers=headers)
        assert answer.status_code == 200, answer.text
        rows = np.load(io.BytesIO(answer.content), allow_pickle=False)
        ids = [i.decode() for i in rows["request_id"]]
        records = wait_for_records(served.home / "inference", ids)
        feedback = client.post("/feedback", json={"request_id": ids[1], "digit": 7})
    assert [records[i]["source"] for i in ids] == ["npy"] * 3
    assert [records[i]["digit"] for i in ids] == rows["digit"].tolist()
    assert feedback.status_code == 200, feedback.text


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"request_id": "0" * 32, "digit": 3}, 404, "unknown or its log has expired"),
        ({"request_id": "0" * 32, "digit": 10}, 400, "less than or equal to 9"),
        ({"request_id": "0" * 32, "digit": -1}, 400, "greater than or equal to 0"),
        ({"request_id": "0" * 32, "digit": "3"}, 400, "valid integer"),
        ({"request_id": "0" * 32, "digit": 3.5}, 400, "valid integer"),
        ({"request_id": "0" * 32, "digit": True}, 400, "valid integer"),
        ({"request_id": "not-an-id", "digit": 3}, 400, "should match pattern"),
        ({"request_id": "0" * 32}, 400, "Field required"),
        ([1, 2], 400, "validation error"),
    ],
)
def test_bad_feedback_gets_a_json_4xx(served, body, status, says):
    answer = httpx.post(f"{served.url}/feedback", json=body, timeout=30)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]


def test_feedback_that_is_not_json_is_refused(served):
    answer = httpx.post(f"{served.url}/feedback", content=b"{not json",
                        headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
    assert answer.status_code == 400 and "Invalid JSON" in answer.json()["error"]
    answer = httpx.post(f"{served.url}/feedback", content=b"digit=3", timeout=30,
                        headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert answer.status_code == 415


def test_the_feedback_route_is_in_the_openapi_document(served):
    post = httpx.get(f"{served.url}/docs.json", timeout=30).json()["paths"]["/feedback"]["post"]
    assert {"200", "400", "404", "429"} <= set(post["responses"])
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"request_id", "digit"}


def test_every_metric_the_alert_rules_read_is_on_metrics(served):
    with httpx.Client(base_url=served.url, timeout=30) as client:
        assert client.post("/predict_array", json=PIXELS).status_code == 200
        assert client.post("/predict_array", json={"pixels": [1]}).status_code == 400
    rules = (REPO / "deploy" / "prometheus" / "alerts.yml").read_text()
    used = set(re.findall(r"\b(?:bentoml_service|mnist)_[a-z_]+\b", rules))
    exposed = {name for name, _ in metric_samples(served.url)}
    assert len(used) >= 6 and used <= exposed, sorted(used - exposed)


@pytest.fixture(scope="module")
def broken(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A service whose log folder cannot exist and whose feedback bound is 5, then ~none."""
    home = tmp_path_factory.mktemp("broken")
    (home / "blocker").write_text("a regular file where the log folder's parent should be")
    env = {"MNIST_INFERENCE_LOG_DIR": str(home / "blocker" / "inference"),
           "MNIST_FEEDBACK_DB": f"sqlite:///{home / 'feedback.sqlite'}",
           "MNIST_FEEDBACK_RATE": "0.0001", "MNIST_FEEDBACK_BURST": "5"}  # fmt: skip
    with serving(model_path, home / "bentoml", **env) as server:
        yield server


def test_a_failing_log_folder_never_fails_a_prediction(broken):
    with httpx.Client(base_url=broken.url, timeout=30) as client:
        statuses = [client.post("/predict_array", json=PIXELS).status_code for _ in range(20)]
    assert statuses == [200] * 20
    name, labels = "mnist_inference_log_dropped_records_total", {"reason": "write_failed"}
    wait_for_metric(broken.url, name, labels, 20.0)
    assert broken.log.read_text().count("inference log: cannot write to") == 1


def test_a_feedback_flood_gets_429_past_the_bound_whatever_address_it_claims(broken):
    # No trusted proxy (the default): each request's X-Forwarded-For names another client,
    # and all of them are the one peer, 127.0.0.1 (uvicorn's own rewrite from loopback
    # would have believed them: serving/peers.py).
    with httpx.Client(base_url=broken.url, timeout=30) as client:
        answers = [
            client.post(
                "/feedback",
                json={"request_id": f"{i:032x}", "digit": 1},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            )
            for i in range(30)
        ]
    assert [a.status_code for a in answers] == [404] * 5 + [429] * 25  # 5 spend the burst
    for refused in answers[5:]:
        assert int(refused.headers["Retry-After"]) >= 1  # one token takes ~10,000 s here
        assert "too many corrections" in refused.json()["error"]
    samples = metric_samples(broken.url)
    assert samples[("mnist_feedback_total", (("outcome", "rate_limited"),))] == 25


def test_two_workers_and_a_burst_of_2000_log_every_request_once(
    model_path: Path, tmp_path: Path, digit_png: bytes
):
    env = {"MNIST_API_WORKERS": "2", "MNIST_INFERENCE_LOG_DIR": str(tmp_path / "inference"),
           "MNIST_FEEDBACK_DB": f"sqlite:///{tmp_path / 'feedback.sqlite'}"}  # fmt: skip
    with serving(model_path, tmp_path / "bentoml", **env) as server:
        statuses, ids = asyncio.run(_burst(server.url, 2000, digit_png))
        assert statuses == {200: 2000}
        wait_for_records(tmp_path / "inference", ids)
    counts = ReadCounts()
    logged = [r["request_id"] for r in read_log(tmp_path / "inference", counts)]
    assert counts.corrupt == 0
    assert len(set(ids)) == 2000 and sorted(logged) == sorted(ids)  # each exactly once
    writers = {path.stem.rsplit("-", 1)[1] for path in (tmp_path / "inference").glob("*.arrows")}
    assert len(writers) == 2, f"one worker took every connection: {writers}"


async def _burst(url: str, n: int, png: bytes) -> tuple[dict[int, int], list[str]]:
    """``n`` requests, 32 at a time, each on a new connection (so both workers accept
    some), half PNG uploads and half JSON arrays: (status -> count, request ids)."""
    statuses: dict[int, int] = {}
    ids: list[str] = []
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                if i % 2:
                    answer = await client.post("/predict", files={"image": ("d.png", png)})
                else:
                    answer = await client.post("/predict_array", json=PIXELS)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                if answer.status_code == 200:
                    ids.append(answer.json()["request_id"])

        await asyncio.gather(*(worker() for _ in range(32)))
    return statuses, ids


def test_corrections_sent_the_moment_their_answers_arrive_are_kept_with_their_input(
    model_path: Path, tmp_path: Path
):
    """Two workers; each correction follows its answer at once, on a new connection (so
    often to the other worker, before the answering worker's writer has written it). Every
    one is accepted, and each stored input is exactly the image its answer logged."""
    store_uri = f"sqlite:///{tmp_path / 'feedback.sqlite'}"
    env = {"MNIST_API_WORKERS": "2", "MNIST_INFERENCE_LOG_DIR": str(tmp_path / "inference"),
           "MNIST_FEEDBACK_DB": store_uri, "MNIST_FEEDBACK_RATE": "1000",
           "MNIST_FEEDBACK_BURST": "1000"}  # fmt: skip
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(200, 28, 28)).astype(float)
    with serving(model_path, tmp_path / "bentoml", **env) as server:
        answers = asyncio.run(_answer_then_correct(server.url, images))
    assert [status for _, status in answers] == [200] * 200
    stored = {row.request_id: row for row in CorrectionsStore(store_uri).corrections()}
    assert sorted(stored) == sorted(request_id for request_id, _ in answers)
    logged = {r["request_id"]: r for r in read_log(tmp_path / "inference")}
    for (request_id, _), image in zip(answers, images):
        row = stored[request_id]
        assert row.pixels == logged[request_id]["input"] == image.astype(np.uint8).tobytes()
        assert row.predicted == logged[request_id]["digit"]


async def _answer_then_correct(url: str, images: np.ndarray) -> list[tuple[str, int]]:
    """Per image: /predict_array, then at once /feedback for its id: (id, feedback status)."""
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=0)
    out: list[tuple[str, int]] = [("", 0)] * len(images)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        todo = iter(range(len(images)))

        async def worker() -> None:
            for i in todo:
                answer = await client.post("/predict_array", json={"pixels": images[i].tolist()})
                request_id = answer.json()["request_id"]
                said = await client.post("/feedback", json={"request_id": request_id, "digit": 3})
                out[i] = (request_id, said.status_code)

        await asyncio.gather(*(worker() for _ in range(16)))
    return out
