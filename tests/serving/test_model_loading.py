"""The model card (model.json) and how serving finds and checks its model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mnist_mlops.core.errors import ChecksumError, DataFormatError
from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.inference.model_card import CARD_NAME, MODEL_PATH_ENV, ModelCard, card_path
from serving.model_loading import ModelLoadError, load_model, resolve_model_path


def test_card_round_trip_holds_checksum_and_version_only_no_volatile_fields(model_path):
    card = ModelCard.read_beside(model_path)
    assert card.sha256 == sha256_file(model_path)
    data = json.loads(card_path(model_path).read_text())
    assert card_path(model_path).name == CARD_NAME
    assert data["version"] == card.version == card.sha256[:12]
    assert data["input_shape"] == ["batch", 28, 28]
    assert not {"created", "registry", "timestamp"} & data.keys()
    card.verify(model_path)


def test_rewriting_the_same_card_gives_the_same_bytes(model_path, tmp_path):
    copy = tmp_path / "model.onnx"
    shutil.copy(model_path, copy)
    first = ModelCard.read_beside(model_path).write_beside(copy).read_bytes()
    again = ModelCard.for_model(copy, **_fields(model_path)).write_beside(copy).read_bytes()
    assert first == again


def _fields(model_path: Path) -> dict:
    card = ModelCard.read_beside(model_path)
    return {"mean": card.mean, "std": card.std}


def test_a_card_without_its_checksum_is_refused(tmp_path):
    (tmp_path / CARD_NAME).write_text('{"mean": 0.1, "std": 0.3}')
    with pytest.raises(DataFormatError, match="sha256"):
        ModelCard.read_beside(tmp_path / "model.onnx")


def test_a_swapped_model_fails_verification(model_path, tmp_path):
    other = tmp_path / "model.onnx"
    other.write_bytes(model_path.read_bytes() + b"\0")
    with pytest.raises(ChecksumError, match="SHA-256"):
        ModelCard.read_beside(model_path).verify(other)


def test_load_model_wraps_card_problems_as_model_load_errors(model_path, tmp_path):
    shutil.copy(model_path, tmp_path / "model.onnx")
    with pytest.raises(ModelLoadError, match=CARD_NAME):
        load_model(tmp_path / "model.onnx")


def test_explicit_model_path_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(MODEL_PATH_ENV, str(tmp_path / "x.onnx"))
    assert resolve_model_path() == tmp_path / "x.onnx"


def test_default_path_is_used_when_it_exists(monkeypatch, model_path):
    monkeypatch.delenv(MODEL_PATH_ENV, raising=False)
    monkeypatch.delenv("MNIST_MODEL_TAG", raising=False)
    assert resolve_model_path([model_path]) == model_path
