"""Two clones share one DVC remote: what one trains, the other pulls and serves without retraining.

Real git and DVC on synthetic data: Alice's repository is the session's ``reproduced``
one (tests/pipeline/conftest.py: ``dvc repro`` done); she pushes its outputs with
``dvc push`` to the project's default remote (the folder ``../mnist-mlops-dvc-remote``
beside the checkout, from ``.dvc/config`` as committed) and her commit to a bare
"origin"; Bob's fresh clone, with its own empty DVC cache, runs ``dvc pull``, finds
every stage up to date but the champion stage (the registry's alias lives outside DVC:
pointed at Alice's registry it runs, finds the champion unmoved and changes nothing), and
serves the pulled champion with a real ``bentoml serve``.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME, inference_session, softmax
from support.bento_process import serving
from support.pipeline_repo import repo_env, run

pytestmark = pytest.mark.slow


def test_fresh_clone_pulls_runs_nothing_and_serves(tmp_path, reproduced):
    alice, env_a = reproduced.path, reproduced.env
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], tmp_path, env_a)
    run(["git", "remote", "add", "shared", str(origin)], alice, env_a)
    pushed = run(["dvc", "push"], alice, env_a).stdout
    run(["git", "add", "-A"], alice, env_a)
    run(["git", "commit", "-qm", "trained"], alice, env_a)
    run(["git", "push", "-q", "shared", "HEAD:refs/heads/main"], alice, env_a)
    remote = alice.parent / "mnist-mlops-dvc-remote"  # ../mnist-mlops-dvc-remote from a clone
    stored = [p for p in remote.rglob("*") if p.is_file()]
    assert len(stored) >= 10, (pushed, stored)

    # Bob's clone sits beside Alice's, so the committed remote path reaches the same folder.
    bob = alice.parent / "bob"
    run(["git", "clone", "-q", "-b", "main", str(origin), str(bob)], tmp_path, env_a)
    # The team's registry: Alice's store (a server, in a team), not one of Bob's own.
    env_b = repo_env(bob, MLFLOW_TRACKING_URI=f"sqlite:///{alice / 'mlflow.db'}")
    assert not (bob / "models/model.onnx").exists() and not (bob / ".dvc/cache").exists()
    run(["dvc", "pull"], bob, env_b)
    for out in ("models/model.onnx", "models/model.ckpt", "data/processed/mnist.npz",
                "models/champion/served.json"):  # fmt: skip
        assert sha256_file(bob / out) == sha256_file(alice / out), out
    status = run(["dvc", "status"], bob, env_b).stdout
    assert [line.strip() for line in status.splitlines() if line.strip()] == [
        "champion:",
        "always changed",
    ], status
    repro = run(["dvc", "repro"], bob, env_b)
    ran = [line for line in repro.stdout.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'champion':"], repro.stdout

    # Bob serves the pulled champion as it is in his checkout (no BentoML store needed):
    # the artifact the registry's champion serves (models/champion), float32 or int8.
    from mnist_mlops.inference.model_card import card_path
    from mnist_mlops.inference.serving_choice import resolve_artifact

    champion = bob / "models/champion/served.json"
    artifact = resolve_artifact(champion)
    meta = json.loads(card_path(artifact).read_text())
    pixels = np.zeros((1, 28, 28), np.float32)
    pixels[0, 4:24, 12:16] = 255.0
    session = inference_session(artifact)
    expected = softmax(session.run([OUTPUT_NAME], {INPUT_NAME: pixels})[0])[0]
    with (
        serving(
            champion, tmp_path / "bob-serve", cwd=bob, PYTHONPATH=f"{bob / 'src'}:{bob}"
        ) as served,
        httpx.Client(base_url=served.url, timeout=30) as client,
    ):
        response = client.post("/predict_array", json={"pixels": pixels[0].tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == meta["version"]
    assert body["digit"] == int(expected.argmax())
    assert np.allclose(body["probabilities"], expected, atol=1e-5)
