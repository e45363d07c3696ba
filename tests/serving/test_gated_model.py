"""What serves is the artifact the gate chose: ``served.json`` resolved, hash-checked, and
reported in every answer and in ``/readyz``; the float model stays one setting away."""

from __future__ import annotations

import io
import json
import time

import httpx
import numpy as np
import pytest

from mnist_mlops.inference.model_card import MODEL_PATH_ENV, MODEL_TAG_ENV, ModelCard
from serving.model_loading import (
    DEFAULT_PATHS,
    MODEL_URI_ENV,
    ModelLoadError,
    load_model,
    model_source,
    resolve_model_path,
)
from serving.schemas import example_pixels
from support.bento_process import READY_TIMEOUT_S, serving, start_server, stop_server
from support.gated import INT8_NAME


def test_a_served_json_resolves_to_the_chosen_int8_artifact(served_choice, monkeypatch):
    monkeypatch.setenv(MODEL_PATH_ENV, str(served_choice))
    path = resolve_model_path()
    assert path == served_choice.with_name(INT8_NAME)
    assert load_model(path).precision == "int8"


def test_the_checkout_serves_the_champion_folder_and_never_the_last_file_trained(
    served_choice, monkeypatch, tmp_path
):
    for name in (MODEL_PATH_ENV, MODEL_TAG_ENV, MODEL_URI_ENV):
        monkeypatch.delenv(name, raising=False)
    source = model_source((served_choice,))
    assert (source.path, source.origin) == (served_choice, "the checkout")
    assert DEFAULT_PATHS == ("models/champion/served.json",)
    monkeypatch.chdir(tmp_path)  # a checkout with models/model.onnx but no champion folder
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.onnx").write_bytes(b"the last file trained")
    with pytest.raises(ModelLoadError) as info:
        model_source()
    message = str(info.value)
    assert "\n" not in message and "dvc repro champion" in message and MODEL_URI_ENV in message


def _swapped(served_choice, tmp_path):
    """A copy of the gated export whose int8 card no longer matches the gate's choice."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for f in served_choice.parent.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    int8 = tmp_path / INT8_NAME
    card = ModelCard.read_beside(int8)
    data = json.loads(int8.with_suffix(".json").read_text())
    data["sha256"] = "f" * 64
    int8.with_suffix(".json").write_text(json.dumps(data))
    assert card.sha256 != data["sha256"]
    return tmp_path / served_choice.name


def test_a_choice_that_does_not_match_its_artifact_is_one_line_naming_the_fix(
    served_choice, tmp_path, monkeypatch
):
    monkeypatch.setenv(MODEL_PATH_ENV, str(_swapped(served_choice, tmp_path)))
    with pytest.raises(ModelLoadError) as info:
        resolve_model_path()
    message = str(info.value)
    assert "\n" not in message and INT8_NAME in message and "dvc repro" in message


def _answers(url: str) -> tuple[dict, dict, httpx.Response]:
    with httpx.Client(base_url=url, timeout=30) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        one = client.post("/predict_array", json={"pixels": example_pixels()})
        assert one.status_code == 200, one.text
        buffer = io.BytesIO()
        np.save(buffer, np.asarray([example_pixels()] * 3, np.uint8))
        npy = client.post(
            "/predict_npy",
            content=buffer.getvalue(),
            headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
        )
        assert npy.status_code == 200, npy.text
    return ready.json(), one.json(), npy


@pytest.mark.slow
def test_served_json_serves_int8_and_every_answer_says_so(served_choice, tmp_path):
    card = ModelCard.read_beside(served_choice.with_name(INT8_NAME))
    with serving(served_choice, tmp_path / "home") as served:
        ready, answer, npy = _answers(served.url)
    assert ready == {"status": "ready", "model_version": card.version, "model_precision": "int8",
                     "model_role": "champion", "model_source": str(served_choice)}  # fmt: skip
    assert (answer["model_role"], answer["model_source"]) == ("champion", str(served_choice))
    assert npy.headers["x-model-source"] == str(served_choice)
    assert (answer["model_precision"], answer["model_version"]) == ("int8", card.version)
    assert npy.headers["x-model-precision"] == "int8"
    assert npy.headers["x-model-version"] == card.version
    log = served.log.read_text()
    assert f"Serving {INT8_NAME} (int8, version {card.version})" in log
    assert f"{served_choice}, set by {MODEL_PATH_ENV}" in log


@pytest.mark.slow
def test_a_swapped_artifact_is_refused_with_one_line_and_no_traceback(served_choice, tmp_path):
    served = start_server(_swapped(served_choice, tmp_path / "export"), tmp_path / "home")
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S  # a hang guard: the API is up long before
        with httpx.Client(base_url=served.url, timeout=10) as client:
            seen: list[int] = []
            while seen.count(503) < 3:  # the API is up and keeps saying "not ready"
                assert served.proc.poll() is None, served.log_text()
                assert time.monotonic() < deadline, served.log_text()
                try:
                    seen.append(client.get("/readyz").status_code)
                except httpx.TransportError:
                    time.sleep(0.2)
                    continue
                assert seen[-1] == 503, served.log_text()
            answer = client.post("/predict_array", json={"pixels": example_pixels()})
        assert answer.status_code == 503 and "changed after the gate" in answer.json()["error"]
    finally:
        stop_server(served)
    log = served.log_text()
    (line,) = [x for x in log.splitlines() if "ModelLoadError" in x]
    assert INT8_NAME in line and "dvc repro" in line
    assert "Traceback" not in log
