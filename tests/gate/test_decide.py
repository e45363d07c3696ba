"""The champion gate: the champion alias only moves up, and only to a model at least as good
on MNIST test AND every field set (within noise), judged against the champion as it is when
the gate holds the promotion lock; each promotion is on the registry's record."""

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.export.register import register_onnx
from mnist_mlops.gate.decide import noise_tolerance, promote_if_better
from mnist_mlops.registry.aliases import CHAMPION
from mnist_mlops.registry.history import read_history
from support.registry_store import Store, make_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[Store]:
    """One sqlite MLflow store with one experiment, and a tiny exported ONNX model: a new
    store's schema takes seconds to create, so the tests share it, each under its own
    registered model name."""
    folder = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as env:
        env.chdir(folder)  # MLflow puts artifacts beside the working directory
        yield make_store(folder)


@pytest.fixture
def name(request) -> str:
    """A registered model name of this test's own: its versions start at 1."""
    return f"digits-{request.node.name}"


def test_champion_moves_only_to_a_better_model(store, name):
    uri, client = store.uri, store.client
    runs = [store.run() for _ in range(3)]

    versions = [
        register_onnx(store.onnx, uri, runs[0], name, 0.98, {"git_commit": "abc"}).version,
        register_onnx(store.onnx, uri, runs[1], name, 0.97).version,
        register_onnx(store.onnx, uri, runs[2], name, 0.985).version,
    ]
    assert versions == ["1", "2", "3"]
    # Registering alone never moves the alias: only the gate does.
    assert not any(v.aliases for v in client.search_model_versions(f"name='{name}'"))
    first, worse, better = (
        promote_if_better(uri, name, v, {"test_accuracy": acc})
        for v, acc in zip(versions, (0.98, 0.97, 0.985), strict=True)
    )
    assert first["promoted"] and first["previous"] is None
    assert not worse["promoted"] and worse["previous_metrics"] == {"test_accuracy": 0.98}
    assert better["promoted"] and better["previous"] == "1"
    champion = client.get_model_version_by_alias(name, CHAMPION)
    assert str(champion.version) == "3" and champion.run_id == runs[2]
    first = client.get_model_version(name, "1")
    became = first.tags.pop("became_champion")
    assert first.tags == {
        "test_accuracy": "0.980000",
        "sha256": sha256_file(store.onnx),  # what every later fetch is checked against
        "git_commit": "abc",
        "gate_decision": "promoted",
        "gate_reason": "no champion yet",
        "left_champion": first.tags["left_champion"],
    }
    assert became.endswith("gate by " + read_history(uri, name)[0].user + ": no champion yet")
    assert "gate by" in first.tags["left_champion"] and first.tags["left_champion"].endswith(
        "(to v3)"
    )
    # The gate's two promotions are on the record, the refusal is not (nothing moved).
    assert [(e.action, e.from_version, e.to_version) for e in read_history(uri, name)] == [
        ("gate", None, "1"),
        ("gate", "1", "3"),
    ]
    # The registered artifact is a loadable MLflow ONNX model.
    model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    assert model.metadata.get_input_schema().inputs[0].shape == (-1, 28, 28)


def test_champion_needs_test_and_every_field_set(store, name):
    uri, client = store.uri, store.client
    versions = [
        register_onnx(store.onnx, uri, store.run(), name, acc).version
        for acc in (0.98, 0.99, 0.985, 0.98)
    ]
    assert not any(v.aliases for v in client.search_model_versions(f"name='{name}'"))

    first = promote_if_better(uri, name, versions[0], {"test_accuracy": 0.98, "field_photo": 0.9})
    # Better on MNIST test, worse on photos: the users would lose, so no promotion.
    worse = promote_if_better(uri, name, versions[1], {"test_accuracy": 0.99, "field_photo": 0.8})
    # Better on both.
    better = promote_if_better(
        uri, name, versions[2], {"test_accuracy": 0.985, "field_photo": 275 / 300}
    )
    # Exactly as good as the champion (whose tag is rounded): "at least as good" promotes.
    tie = promote_if_better(
        uri, name, versions[3], {"test_accuracy": 0.985, "field_photo": 275 / 300}
    )

    assert first["promoted"] and first["previous"] is None
    assert not worse["promoted"] and worse["worse_on"] == ["field_photo"]
    assert better["promoted"] and better["previous"] == versions[0]
    assert tie["promoted"] and tie["previous"] == versions[2]
    champion = client.get_model_version_by_alias(name, CHAMPION)
    assert str(champion.version) == versions[3]
    refused = client.get_model_version(name, versions[1]).tags
    assert refused["field_photo"] == "0.800000" and refused["gate_decision"] == "refused"
    # The registry's UI says why: which metric, both numbers, against which champion.
    assert (
        refused["gate_reason"]
        == worse["reason"]
        == (
            f"worse than champion v{versions[0]} beyond noise on "
            "field_photo 0.8000 vs 0.9000 (lowest allowed 0.9000)"
        )
    )
    assert client.get_model_version(name, versions[2]).tags["gate_decision"] == "promoted"


def _versions(store: Store, name: str, n: int) -> list[str]:
    """``n`` versions as the export stage leaves them (card logged, hash tagged): the gate
    fetches a champion it rescores through the registry, hash- and card-checked."""
    return [store.register(name, 0.9) for _ in range(n)]


def test_noise_tolerance_shrinks_with_the_number_of_images():
    big, small = noise_tolerance(0.97, 10_000, 2.0), noise_tolerance(0.97, 300, 2.0)
    assert big == pytest.approx(2 * (2 * 0.9698 * 0.0302 / 10_000) ** 0.5, rel=1e-3)
    assert 0.004 < big < 0.006 and 0.02 < small < 0.04
    assert noise_tolerance(1.0, 100, 2.0) > 0.02  # 100 % on 100 images is not certainty
    assert noise_tolerance(0.9, 300, 0.0) == 0.0 and noise_tolerance(0.9, 0, 2.0) == 0.0


def test_a_drop_within_the_tolerance_promotes_a_larger_one_does_not(store, name):
    uri = store.uri
    v = _versions(store, name, 3)
    promote_if_better(uri, name, v[0], {"test_accuracy": 0.98, "field_photo": 0.90})
    near = promote_if_better(
        uri, name, v[1], {"test_accuracy": 0.976, "field_photo": 0.95},
        tolerances={"test_accuracy": 0.005},
    )  # fmt: skip
    far = promote_if_better(
        uri, name, v[2], {"test_accuracy": 0.97, "field_photo": 0.99},
        tolerances={"test_accuracy": 0.005},
    )  # fmt: skip
    assert near["promoted"] and near["previous"] == v[0]
    assert not far["promoted"] and far["worse_on"] == ["test_accuracy"]


def test_a_champion_scored_on_other_sets_is_scored_again_on_these(store, name):
    """New corrections (or regenerated sets) change what the models are compared on: the
    champion's old tags are not comparable, so it is measured again on the current sets."""
    import onnxruntime

    uri, client = store.uri, store.client
    v = _versions(store, name, 3)
    promote_if_better(uri, name, v[0], {"test_accuracy": 0.99}, sets_sha256="a" * 64)
    seen: list[Path] = []

    def rescore(path: Path) -> dict[str, float]:
        onnxruntime.InferenceSession(str(path))  # the champion's real model file
        seen.append(path)
        return {"test_accuracy": 0.97, "field_corrections": 0.2}

    metrics = {"test_accuracy": 0.975, "field_corrections": 0.8}
    result = promote_if_better(uri, name, v[1], metrics, sets_sha256="b" * 64, rescore=rescore)
    assert len(seen) == 1 and result["rescored_previous"]
    assert result["promoted"] and result["previous_metrics"] == {
        "test_accuracy": 0.97,
        "field_corrections": 0.2,
    }  # compared with the new numbers: 0.975 >= 0.97, not with the stale 0.99
    old = client.get_model_version(name, v[0]).tags
    assert old["sets_sha256"] == "b" * 64 and old["field_corrections"] == "0.200000"
    # Same sets as the champion's: its tags are compared as they are, nothing is rescored.
    same = promote_if_better(
        uri, name, v[2], {"test_accuracy": 0.974, "field_corrections": 0.9},
        sets_sha256="b" * 64, rescore=rescore,
    )  # fmt: skip
    assert len(seen) == 1 and not same["rescored_previous"]
    assert not same["promoted"] and same["worse_on"] == ["test_accuracy"]


def test_two_gates_at_once_decide_one_after_the_other(store, name, caplog):
    """Queued experiments run their gates in parallel (``dvc queue start --jobs 2``): the
    second must compare against the first's outcome, not the champion both started from.
    Gate A is held inside its decision (rescoring the old champion) until gate B is either
    done (the race: B compared against v1 and won) or waiting for A's lock."""
    import logging
    import threading

    uri = store.uri
    v = _versions(store, name, 3)
    promote_if_better(uri, name, v[0], {"test_accuracy": 0.90}, sets_sha256="a" * 64)
    inside, release = threading.Event(), threading.Event()

    def held(_path: Path) -> dict[str, float]:
        inside.set()
        assert release.wait(120), "the test never released gate A"
        return {"test_accuracy": 0.90}

    results: dict[str, dict] = {}

    def gate(key: str, version: str, accuracy: float, rescore) -> None:
        metrics = {"test_accuracy": accuracy}
        results[key] = promote_if_better(uri, name, version, metrics, "b" * 64, rescore)

    a = threading.Thread(target=gate, args=("a", v[1], 0.99, held))
    b = threading.Thread(target=gate, args=("b", v[2], 0.95, lambda _p: {"test_accuracy": 0.9}))
    caplog.set_level(logging.INFO, logger="mnist_mlops.core.locks")
    a.start()
    assert inside.wait(120), "gate A never reached its decision"
    b.start()
    waiting = "waiting for another champion decision"
    while b.is_alive() and not any(waiting in r.getMessage() for r in caplog.records):
        b.join(0.05)
    release.set()
    a.join(120)
    b.join(120)
    assert results["a"]["promoted"] and results["a"]["previous"] == v[0]
    # B saw A's outcome: 0.95 is worse than the new champion's 0.99, so it was refused.
    assert results["b"]["previous"] == v[1], results["b"]
    assert not results["b"]["promoted"] and results["b"]["worse_on"] == ["test_accuracy"]
    champion = store.client.get_model_version_by_alias(name, CHAMPION)
    assert str(champion.version) == v[1]
