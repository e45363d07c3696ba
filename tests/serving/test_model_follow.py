"""A worker follows the registry's alias: a move switches, a version that fails a check is
refused (counted, logged once, the old model keeps serving) until the next good move, and a
registry that is down never touches a prediction. A real sqlite MLflow registry with real
ONNX versions (tests/support/registry.py), the follower called directly or in its thread."""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from serving.model_follow import Follower
from serving.model_loading import LoadedModel
from serving.model_pair import ServedModels, score
from serving.settings import ServiceSettings
from serving.smoke_set import SmokeSet
from support.registry import register_version, registered_onnx
from support.versions import version_files

MODEL = "mnist-mlp"
URI = f"models:/{MODEL}@champion"
WAIT_S = 120  # a hang guard: every wait below ends as soon as its condition holds


class Counters:
    """A :class:`~serving.model_follow.FollowCounters` that remembers."""

    def __init__(self) -> None:
        self.moves: Counter[tuple[str, str]] = Counter()
        self.poll_failures = 0
        self.serving_now: dict[str, str | None] = {}

    def moved(self, role: str, outcome: str) -> None:
        self.moves[role, outcome] += 1

    def poll_failed(self, role: str) -> None:
        self.poll_failures += 1

    def serving(self, model: LoadedModel | None, replaced: LoadedModel | None) -> None:
        role = model.role if model is not None else replaced.role if replaced else "?"
        self.serving_now[role] = model.registry_version if model is not None else None


@pytest.fixture
def registry(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="module")
def versions(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return version_files(model_path, tmp_path_factory.mktemp("versions"))


def follower(
    registry: str, versions: dict[str, Path], tmp_path: Path, counters: Counters, retry: int = 30
):
    """A follower of the champion alias whose installs land in ``serving["champion"]``."""
    serving: dict[str, LoadedModel] = {}
    smoke = SmokeSet.read(versions["smoke"], 0.95)
    follow = Follower(registry, URI, "champion", tmp_path / "cache", smoke,
                      install=lambda m: serving.__setitem__("champion", m),
                      current=lambda: serving.get("champion"), counters=counters,
                      poll_s=0.05, retry_polls=retry)  # fmt: skip
    return follow, serving


def test_a_move_switches_a_bad_version_is_refused_once_and_the_next_move_switches(
    registry, versions, tmp_path, caplog
):
    counters = Counters()
    follow, serving = follower(registry, versions, tmp_path, counters)
    register_version(registry, MODEL, versions["a"], alias="champion")
    assert follow.check() == "switched"
    assert serving["champion"].registry_version == "1"
    assert follow.check() == "unchanged"

    register_version(registry, MODEL, versions["b"], alias="champion")
    assert follow.check() == "switched"
    now = serving["champion"]
    assert (now.registry_version, now.role, now.source) == ("2", "champion", f"{URI} v2")

    # v3's bytes change in the artifact store after it was registered: refused, once.
    register_version(registry, MODEL, versions["c"], alias="champion")
    corrupted = registered_onnx(registry, MODEL, "3")
    corrupted.write_bytes(corrupted.read_bytes()[:-8] + b"\0" * 8)
    with caplog.at_level(logging.ERROR, logger="serving.model_follow"):
        assert follow.check() == "refused"
        assert follow.check() == "refused"
    assert serving["champion"] is now  # the old model keeps serving
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "v3" in refusals[0] and "\n" not in refusals[0]
    assert "hash" in refusals[0].lower() and "still serving" in refusals[0]

    # A version that answers the smoke set wrong is refused too.
    register_version(registry, MODEL, versions["other"], alias="champion")
    assert follow.check() == "refused"
    assert "smoke-set" in follow.problem and serving["champion"] is now

    register_version(registry, MODEL, versions["d"], alias="champion")
    assert follow.check() == "switched"
    assert serving["champion"].registry_version == "5"
    assert counters.moves == {("champion", "switched"): 3, ("champion", "refused"): 2}
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["champion-v5"]


def test_a_removed_challenger_alias_retires_the_challenger_and_a_new_one_is_followed(
    registry, versions, tmp_path
):
    """Removing the challenger alias ends a shadow or a canary: the worker stops scoring
    with it (not a poll failure: nothing is wrong); set again, it is followed again. The
    champion is never retired (without it nothing answers)."""
    import mlflow

    counters, serving = Counters(), {}
    uri = f"models:/{MODEL}@challenger"
    smoke = SmokeSet.read(versions["smoke"], 0.95)
    follow = Follower(registry, uri, "challenger", tmp_path / "cache", smoke,
                      install=lambda m: serving.__setitem__("challenger", m),
                      current=lambda: serving.get("challenger"), counters=counters,
                      poll_s=0.05)  # fmt: skip
    assert follow.check() == "unreachable"  # never set: nothing to retire, a failed poll
    register_version(registry, MODEL, versions["a"], alias="challenger")
    assert follow.check() == "switched" and serving["challenger"].registry_version == "1"
    client = mlflow.MlflowClient(registry)
    client.delete_registered_model_alias(MODEL, "challenger")
    assert follow.check() == "retired"
    assert serving["challenger"] is None and counters.serving_now["challenger"] is None
    assert follow.check() == "unchanged" and counters.poll_failures == 1
    assert not list((tmp_path / "cache").iterdir())  # its fetched files are gone too
    client.set_registered_model_alias(MODEL, "challenger", "1")
    assert follow.check() == "switched" and serving["challenger"].registry_version == "1"

    champion_counters = Counters()
    champion, served = follower(registry, versions, tmp_path / "c", champion_counters)
    register_version(registry, MODEL, versions["b"], alias="champion")
    assert champion.check() == "switched"
    client.delete_registered_model_alias(MODEL, "champion")
    assert champion.check() == "unreachable" and served["champion"].registry_version == "2"


def test_a_version_refused_for_a_passing_reason_is_retried_quietly_and_then_serves(
    registry, versions, tmp_path, caplog
):
    counters = Counters()
    follow, serving = follower(registry, versions, tmp_path, counters, retry=3)
    register_version(registry, MODEL, versions["a"], alias="champion")
    assert follow.check() == "switched"
    register_version(registry, MODEL, versions["b"], alias="champion")
    stored = registered_onnx(registry, MODEL, "2")
    away = stored.rename(stored.with_suffix(".away"))  # the artifact store loses it a moment
    with caplog.at_level(logging.ERROR, logger="serving.model_follow"):
        assert follow.check() == "refused"
        away.rename(stored)
        assert [follow.check(), follow.check()] == ["refused", "refused"]  # not fetched yet
        assert follow.check() == "switched"  # the third poll since: fetched again
    assert serving["champion"].registry_version == "2"
    assert counters.moves == {("champion", "switched"): 2, ("champion", "refused"): 1}
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1


def test_a_registry_that_is_down_is_counted_and_logged_once(versions, tmp_path, caplog):
    counters = Counters()
    down = "http://127.0.0.1:9"  # discard port: nothing listens
    follow, serving = follower(down, versions, tmp_path, counters)
    start = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="serving.model_follow"):
        assert [follow.check(), follow.check()] == ["unreachable", "unreachable"]
    assert time.monotonic() - start < 60  # MLflow's own retries would take minutes
    assert counters.poll_failures == 2 and not serving
    (line,) = [r.getMessage() for r in caplog.records]
    assert "cannot follow" in line and "MLFLOW_TRACKING_URI" in line


def test_a_worker_switches_in_its_thread_and_answers_throughout_while_the_registry_goes(
    registry, versions, tmp_path, monkeypatch, stroke_pixels
):
    register_version(registry, MODEL, versions["a"], alias="champion")
    monkeypatch.delenv("MNIST_MODEL_PATH", raising=False)
    for name, value in {"MNIST_MODEL_URI": URI, "MLFLOW_TRACKING_URI": registry,
                        "MNIST_SMOKE_PATH": str(versions["smoke"]),
                        "MNIST_MODEL_POLL_S": "0.05"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    counters = Counters()
    served = ServedModels.start(ServiceSettings.from_env(), counters)
    try:
        assert served.problem == "" and served.pair.champion.registry_version == "1"
        batch = stroke_pixels[None]
        register_version(registry, MODEL, versions["b"], alias="champion")
        answered = set()
        deadline = time.monotonic() + WAIT_S
        while served.pair.champion.registry_version != "2":  # answers flow meanwhile
            answered.add(score(served.pair, batch, "off", 0.0, "k").answered.registry_version)
            assert time.monotonic() < deadline, "no switch"
            time.sleep(0.005)
        assert answered <= {"1", "2"}
        assert counters.serving_now == {"champion": "2"}
        # The registry goes away: polls fail and are counted; every prediction is answered.
        db = Path(registry.removeprefix("sqlite:///"))
        db.rename(db.with_suffix(".gone"))
        failures = counters.poll_failures
        answers = []
        while counters.poll_failures < failures + 3:
            answers.append(score(served.pair, batch, "off", 0.0, "k"))
            assert time.monotonic() < deadline + WAIT_S, "the polls did not fail"
            time.sleep(0.005)
        assert {s.answered.registry_version for s in answers} == {"2"}
        assert all(np.isfinite(s.probabilities).all() for s in answers)
    finally:
        served.stop()
