"""The package stage packs what the champion serves: from models/champion/served.json, a
Bento whose store entry holds the int8 artifact the gate chose for that version, its smoke
set and its registry version, which the Bento's service loads and reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
import yaml

from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.inference.model_card import CARD_NAME, MODEL_FILE, STORE_NAME, ModelCard
from mnist_mlops.registry.deployment import SMOKE_NAME
from serving.schemas import example_pixels
from support import ROOT
from support.bento_process import serving
from support.deployment import deployment_folder
from support.gated import INT8_NAME

pytestmark = pytest.mark.slow


def test_package_from_the_champion_builds_a_bento_that_serves_int8(
    served_choice, processed_dir, tmp_path
):
    champion = deployment_folder(served_choice, tmp_path / "champion", processed_dir, "3")
    home = tmp_path / "bentoml"
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
    }
    out = tmp_path / "mnist_classifier.bento"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.package", str(champion), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    int8 = served_choice.with_name(INT8_NAME)
    card = ModelCard.read_beside(int8)
    entry = home / "models" / STORE_NAME / card.version
    assert sha256_file(entry / MODEL_FILE) == card.sha256  # the int8 file, not the float one
    assert json.loads((entry / CARD_NAME).read_text())["precision"] == "int8"
    assert sha256_file(entry / SMOKE_NAME) == sha256_file(champion.with_name(SMOKE_NAME))
    info = yaml.safe_load((entry / "model.yaml").read_text())
    assert info["labels"]["registry_version"] == info["metadata"]["registry_version"] == "3"
    assert out.stat().st_size > 0
    with (
        serving(None, home, target=f"mnist_classifier:{card.version}", cwd=tmp_path, PYTHONPATH="")
        as served,
        httpx.Client(base_url=served.url, timeout=30) as client,
    ):  # fmt: skip
        ready = client.get("/readyz").json()
        answer = client.post("/predict_array", json={"pixels": example_pixels()}).json()
    assert ready["model_precision"] == answer["model_precision"] == "int8"
    assert answer["model_version"] == card.version
