"""A real `dvc repro` of the whole pipeline in a temporary git repo, on synthetic data.

The repo and its first repro are the session's ``reproduced`` (tests/pipeline/conftest.py).
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest
import yaml

from support.pipeline_repo import run as _run

BENTO = "bentos/mnist_classifier.bento"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(reproduced) -> tuple[Path, dict[str, str]]:
    return reproduced.path, reproduced.env


@pytest.fixture(scope="module")
def first_repro(reproduced) -> str:
    """What the first ``dvc repro`` printed."""
    return reproduced.stdout


def test_every_declared_output_exists(repo, first_repro):
    path, _ = repo
    stages = yaml.safe_load((path / "dvc.yaml").read_text())["stages"]
    declared = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                declared.append(entry if isinstance(entry, str) else next(iter(entry)))
    assert len(declared) >= 15
    missing = [d for d in declared if not (path / d).exists()]
    assert not missing, missing
    ran = ("download", "split", "prepare", "train", "evaluate", "export", "field", "champion",
           "package")  # fmt: skip
    for stage in (*ran, "report"):
        assert f"Running stage '{stage}'" in first_repro


def test_the_results_page_shows_this_runs_numbers(repo, first_repro):
    """The report stage rendered the page from the metrics this repro wrote, not the
    project's committed ones: the test accuracy and the field sets' size are this run's."""
    path, _ = repo
    page = (path / "docs/results.md").read_text()
    test = json.loads((path / "metrics/evaluate.json").read_text())["test"]
    assert f"({test['errors']:,} wrong of {test['n']:,})" in page
    section = page.split("## Field sets", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():  # the first table: the served artifact's sets
        if "|" in line:
            rows.setdefault(line.split(" | ")[0].strip("| "), line)
    field = json.loads((path / "metrics/field.json").read_text())["sets"]
    for name, s in field.items():
        assert f"| {100 * s['accuracy']:.1f} % |" in rows[name] and f"| {s['n']} |" in rows[name]


def test_metrics_parse_and_make_sense(repo, first_repro):
    path, env = repo
    evaluate = json.loads((path / "metrics/evaluate.json").read_text())
    assert 0.8 <= evaluate["test"]["accuracy"] <= 1.0
    assert evaluate["test"]["n"] == 200
    export = json.loads((path / "metrics/export.json").read_text())
    assert export["passed"] and export["argmax_mismatches"] == 0
    cm = json.loads((path / "metrics/confusion_matrix.json").read_text())[
        "rows_true_cols_predicted"
    ]
    assert len(cm) == 10 and all(len(r) == 10 for r in cm) and sum(map(sum, cm)) == 200
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], path, env).stdout)
    assert shown, "dvc metrics show returned nothing"
    meta = json.loads((path / "models/model.json").read_text())
    from mnist_mlops.core.fileio import sha256_file

    assert meta["sha256"] == sha256_file(path / "models/model.onnx")
    from mnist_mlops.registry.versions import registered_version

    run_id = json.loads((path / "models/run.json").read_text())["run_id"]
    uri = f"sqlite:///{path}/mlflow.db"
    version = registered_version(uri, "mnist-mlp", run_id, meta["sha256"])
    assert export["registry"] == {"model": "mnist-mlp", "version": version}
    int8 = json.loads((path / "models/model.int8.json").read_text())
    assert int8["sha256"] == sha256_file(path / "models/model.int8.onnx")
    assert int8["precision"] == "int8" and int8["test_accuracy"] == export["int8"]["test_accuracy"]
    assert export["int8"]["n_images"] == 200 and export["int8"]["agreement"] >= 0.9
    assert (path / "mlflow.db").stat().st_size > 0
    field = json.loads((path / "metrics/field.json").read_text())
    assert set(field["sets"]) == {"photo", "marker", "pen", "canvas", "fonts", "writers"}
    drawn = {k: s for k, s in field["sets"].items() if k != "writers"}
    assert all(s["n"] == 20 for s in drawn.values())  # field.n_per_set in this repo
    assert field["sets"]["writers"]["n"] == 1797  # the real writers: all of them, always
    assert field["min_accuracy"] == min(s["accuracy"] for s in field["sets"].values())
    assert field["champion"]["promoted"]  # the first model in a fresh registry
    # Both artifacts scored on every set and the test split; the served one's are `sets`.
    assert set(field["artifacts"]) == {"float32", "int8"}
    for accuracies in field["artifacts"].values():
        assert set(accuracies) == {*field["sets"], "test"}
    served = field["served"]
    assert {k: s["accuracy"] for k, s in field["sets"].items()} == {
        k: field["artifacts"][served["precision"]][k] for k in field["sets"]
    }
    choice = json.loads((path / "models/served.json").read_text())
    assert {k: choice[k] for k in ("artifact", "precision", "reason")} == served


def test_field_accuracy_is_what_the_model_gets_through_the_serving_path(repo, first_repro):
    """Each set's accuracy in metrics/field.json is a recount: the same images (same seed),
    decoded as the service decodes them, through the artifact served.json chose, against
    their labels; the MLflow run and the champion's registry tags carry the same numbers,
    and the champion's tags name that artifact.

    (On the synthetic data the drawn sets sit near chance: their classes differ only by
    where the block is, which the preprocessing's centring removes. The trained model's
    reading of real digits is tests/model's subject.)
    """
    import mlflow
    import numpy as np

    from mnist_mlops.core.config import FieldConfig, load_params
    from mnist_mlops.data.splits import load_splits
    from mnist_mlops.evaluation.fieldsets import build_set
    from mnist_mlops.imaging import ImageError, preprocess_image
    from mnist_mlops.inference.model_card import ModelCard
    from mnist_mlops.inference.serving_choice import resolve_artifact
    from mnist_mlops.inference.session import INPUT_NAME, inference_session

    path, _ = repo
    field = json.loads((path / "metrics/field.json").read_text())["sets"]
    cfg = FieldConfig.from_params(load_params(path / "params.yaml"))
    splits, _ = load_splits(path / "data/processed")
    served = resolve_artifact(path / "models/served.json")
    session = inference_session(served)
    for name in cfg.sets:
        blobs, labels = build_set(name, splits.x_test, splits.y_test, cfg.n_per_set, cfg.seed)
        right = refused = 0
        for blob, label in zip(blobs, labels):
            try:
                pixels = preprocess_image(blob)[None].astype(np.float32)
            except ImageError:
                refused += 1
                continue
            right += int(session.run(None, {INPUT_NAME: pixels})[0].argmax() == label)
        assert field[name]["accuracy"] == right / len(labels), name
        assert field[name]["refused"] == refused, name
    client = mlflow.MlflowClient(f"sqlite:///{path}/mlflow.db")
    run = client.get_run(json.loads((path / "models/run.json").read_text())["run_id"])
    champion = client.get_model_version_by_alias("mnist-mlp", "champion")
    for name, result in field.items():
        assert run.data.metrics[f"field/acc_{name}"] == pytest.approx(result["accuracy"])
        assert float(champion.tags[f"field_{name}"]) == pytest.approx(result["accuracy"], abs=1e-6)
    assert champion.tags["served_artifact"] == served.name
    assert champion.tags["served_sha256"] == ModelCard.read_beside(served).sha256
    assert champion.tags["gate_decision"] == "promoted"


def test_mlflow_run_is_complete_and_model_registered(repo, first_repro):
    import mlflow

    path, _ = repo
    client = mlflow.MlflowClient(f"sqlite:///{path}/mlflow.db")
    meta = json.loads((path / "models/model.json").read_text())
    run = client.get_run(json.loads((path / "models/run.json").read_text())["run_id"])
    assert run.data.metrics["test/acc"] == pytest.approx(meta["test_accuracy"])
    assert len(run.data.tags["dataset_sha256"]) == 64
    champion = client.get_model_version_by_alias("mnist-mlp", "champion")
    assert champion.run_id == run.info.run_id
    assert champion.tags["sha256"] == meta["sha256"]  # the registry records its own versions
    # The card holds nothing that changes when the same model is exported again.
    assert not {"registry", "created", "mlflow_run_id"} & set(meta)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/confusion_matrix.png" in artifacts


CHAMPION = "models/champion/served.json"  # what the registry's champion serves


def _served_card(path: Path) -> dict:
    """The card of the artifact the champion serves (what the package stage must ship)."""
    from mnist_mlops.inference.model_card import card_path
    from mnist_mlops.inference.serving_choice import resolve_artifact

    return json.loads(card_path(resolve_artifact(path / CHAMPION)).read_text())


def _champion(path: Path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{path}/mlflow.db")
    return client.get_model_version_by_alias("mnist-mlp", "champion")


def _digest(folder: Path) -> dict[str, str]:
    from mnist_mlops.core.fileio import sha256_file

    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


def test_the_champion_folder_is_what_the_registry_champion_serves(repo, first_repro):
    """models/champion holds the champion's served artifact (its registry tag's hash), its
    card, served.json naming the version, and the smoke set; the stage said so in one line."""
    from mnist_mlops.inference.serving_choice import ServingChoice, resolve_artifact
    from mnist_mlops.registry.deployment import SMOKE_NAME, read_smoke

    path, _ = repo
    champion = _champion(path)
    choice = ServingChoice.read(path / CHAMPION)
    assert choice.version == str(champion.version)
    assert choice.sha256 == champion.tags["served_sha256"] == _served_card(path)["sha256"]
    assert resolve_artifact(path / CHAMPION).name == champion.tags["served_artifact"]
    x, y = read_smoke(path / "models/champion" / SMOKE_NAME)
    assert len(x) == len(y) > 0 and set(y.tolist()) == set(range(10))
    short = choice.sha256[:12]
    start = (f"serving mnist-mlp v{champion.version} ({choice.precision}, {short}) from "
             "models:/mnist-mlp@champion: ")  # fmt: skip
    lines = [line for line in first_repro.splitlines() if line.startswith(start)]
    # why: the move that made it champion (when, which action, by whom, the gate's reason)
    assert len(lines) == 1
    assert lines[0].endswith(f" gate by {getpass.getuser()}: no champion yet")


def test_package_stage_stores_the_exact_model(repo, first_repro):
    """The Bento holds the artifact the gate chose, not whichever file was exported last."""
    path, env = repo
    meta = _served_card(path)
    tag = f"mnist-mlp:{meta['sha256'][:12]}"
    models = json.loads(_run(["bentoml", "models", "list", "-o", "json"], path, env).stdout)
    assert tag in {m["tag"] for m in models}
    entry = path / ".bentoml/models/mnist-mlp" / meta["sha256"][:12]
    info = yaml.safe_load((entry / "model.yaml").read_text())
    assert info["labels"]["registry_version"] == str(_champion(path).version)
    assert (entry / "smoke.npz").read_bytes() == (path / "models/champion/smoke.npz").read_bytes()
    bentos = json.loads(_run(["bentoml", "list", "-o", "json"], path, env).stdout)
    assert f"mnist_classifier:{meta['sha256'][:12]}" in {b["tag"] for b in bentos}
    assert (path / "bentos/mnist_classifier.bento").stat().st_size > 100_000
    # The Bento installs what serving imports (a Bento without them fails on import), no torch.
    wanted = (path / f".bentoml/bentos/mnist_classifier/{meta['sha256'][:12]}"
              / "env/python/requirements.in").read_text().lower()  # fmt: skip
    for name in ("numpy", "pillow", "opencv-python-headless", "onnxruntime", "pydantic"):
        assert name in wanted, (name, wanted)
    assert "torch" not in wanted


def test_built_bento_serves_its_own_model(repo, first_repro, tmp_path):
    """``bentoml serve <bento tag>`` from a folder without models/: the model must come
    from the Bento (MNIST_MODEL_TAG -> the model store), and answer like ONNX Runtime does."""
    import httpx
    import numpy as np

    from mnist_mlops.inference.serving_choice import resolve_artifact
    from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME, inference_session, softmax
    from support.bento_process import serving

    path, env = repo
    meta = _served_card(path)
    version = meta["sha256"][:12]
    pixels = np.zeros((1, 28, 28), np.float32)
    pixels[0, 4:24, 12:16] = 255.0  # a "1"
    session = inference_session(resolve_artifact(path / CHAMPION))
    expected = softmax(session.run([OUTPUT_NAME], {INPUT_NAME: pixels})[0])[0]
    with (
        serving(
            None,
            path / ".bentoml",
            target=f"mnist_classifier:{version}",
            cwd=tmp_path,
            PYTHONPATH="",
        ) as served,
        httpx.Client(base_url=served.url, timeout=30) as client,
    ):
        response = client.post("/predict_array", json={"pixels": pixels[0].tolist()})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["digit"] == int(expected.argmax())
        assert np.allclose(body["probabilities"], expected, atol=1e-5)
        assert body["model_version"] == version
        assert body["model_precision"] == meta["precision"]


def test_second_repro_runs_only_the_champion_stage(repo, first_repro):
    """The alias may have moved outside DVC, so the champion stage always runs; unmoved, it
    leaves models/champion's bytes as they were and nothing after it runs again."""
    path, env = repo
    before = _digest(path / "models/champion")
    second = _run(["dvc", "repro"], path, env)
    ran = [line for line in second.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'champion':"], second.stdout
    assert f"serving mnist-mlp v{_champion(path).version} (" in second.stdout
    assert _digest(path / "models/champion") == before
    status = _run(["dvc", "status"], path, env).stdout
    assert [line.strip() for line in status.splitlines() if line.strip()] == [
        "champion:",
        "always changed",
    ], status


def test_param_change_reruns_only_downstream(repo, first_repro):
    path, env = repo
    params = yaml.safe_load((path / "params.yaml").read_text())
    params["export"]["atol"] = 0.001
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run(["dvc", "repro"], path, env).stdout
    assert "Running stage 'export'" in out
    assert "Running stage 'train'" not in out and "Running stage 'download'" not in out


def test_a_refused_retrain_changes_neither_the_champion_nor_the_bento(repo, first_repro):
    """The issue's experiment: a retrain the gate refuses (here: a learning rate that leaves
    the weights as initialised) registers a version, but models/champion and the Bento stay
    the champion's, and the repro ends by saying which version serves and why the new one
    does not. The params are put back (and reproduced from DVC's run cache) afterwards."""
    from mnist_mlops.core.fileio import sha256_file

    path, env = repo
    champion = _champion(path)
    folder, bento = _digest(path / "models/champion"), sha256_file(path / BENTO)
    original = (path / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["train"]["lr"] = 1e-9
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = _run(["dvc", "repro"], path, env).stdout
    finally:
        (path / "params.yaml").write_text(original)
    assert "Running stage 'field'" in out and "Running stage 'package'" not in out, out
    field = json.loads((path / "metrics/field.json").read_text())["champion"]
    assert not field["promoted"], field
    assert str(_champion(path).version) == str(champion.version)
    assert _digest(path / "models/champion") == folder
    assert sha256_file(path / BENTO) == bento
    [line] = [line for line in out.splitlines() if line.startswith("serving mnist-mlp ")]
    assert line.startswith(f"serving mnist-mlp v{champion.version} (")
    assert " is refused: worse than champion v" in line, line
    _run(["dvc", "repro"], path, env)  # back to the champion's model (the run cache)
