"""The exported model's metadata (``model.json`` beside ``model.onnx``): one owner for the file.

The export stage writes it, packaging and serving read and verify it, benchmarks and
tests make their own with it. It holds only what identifies and describes the model
file (checksum, I/O names and shapes, training-set statistics), nothing volatile such
as a timestamp or a registry version, so a re-export of the same model leaves the
tracked file unchanged::

    card = ModelCard.for_model("models/model.onnx", mean=0.13, std=0.31)
    card.write_beside("models/model.onnx")
    ModelCard.read_beside("models/model.onnx").verify("models/model.onnx")
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_mlops.core.errors import ChecksumError, DataFormatError
from mnist_mlops.core.fileio import read_json, sha256_file, write_json
from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME

CARD_NAME = "model.json"  # always this name, in the model file's folder
MODEL_FILE = "model.onnx"  # the model's file name in the BentoML model store entry
STORE_NAME = "mnist-mlp"  # the BentoML model store entry, tagged by version
MODEL_PATH_ENV = "MNIST_MODEL_PATH"  # points the service at a model.onnx
MODEL_TAG_ENV = "MNIST_MODEL_TAG"  # set inside a built Bento: the store tag packaged with it
VERSION_HEX = 12  # a model's version: this many leading hex digits of its SHA-256
PRECISIONS = ("float32", "int8")  # what a card's precision may say


def card_path(model_path: str | os.PathLike[str]) -> Path:
    """Where the card of ``model_path`` lives: beside it, same stem, ``.json``.

    ``model.onnx`` -> ``model.json`` (:data:`CARD_NAME`), ``model.int8.onnx`` ->
    ``model.int8.json``: each artifact of one export vouched for by a card of its own.
    """
    return Path(model_path).with_suffix(".json")


@dataclass(frozen=True)
class ModelCard:
    """What ``model.json`` says about the ONNX file beside it."""

    sha256: str
    mean: float  # training-set pixel statistics, already folded into the graph
    std: float
    test_accuracy: float = 0.0
    opset: int = 18
    format: str = "onnx"
    input: str = INPUT_NAME
    output: str = OUTPUT_NAME
    # Raw 0..255 pixels, white ink on black: normalisation happens inside the graph.
    input_shape: list[Any] = field(default_factory=lambda: ["batch", 28, 28])
    input_dtype: str = "float32"
    input_range: list[int] = field(default_factory=lambda: [0, 255])
    # What the weights are stored and computed in: PRECISIONS. A quantized artifact's card
    # also says how it was made (method, format, calibration), so it can be made again.
    precision: str = "float32"
    quantization: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """The model's short name in answers and store tags: a prefix of its SHA-256."""
        return self.sha256[:VERSION_HEX]

    @classmethod
    def for_model(cls, model_path: str | os.PathLike[str], **fields: Any) -> ModelCard:
        """A card for ``model_path`` as it is on disk now (its SHA-256 computed here)."""
        return cls(sha256=sha256_file(model_path), **fields)

    def write_beside(self, model_path: str | os.PathLike[str]) -> Path:
        """Write ``model.json`` next to ``model_path`` (atomically); return its path."""
        path = card_path(model_path)
        write_json(path, {**dataclasses.asdict(self), "version": self.version})
        return path

    @classmethod
    def read_beside(cls, model_path: str | os.PathLike[str]) -> ModelCard:
        """Read the card next to ``model_path``; unknown keys (older exports) are ignored."""
        path = card_path(model_path)
        if not path.is_file():
            raise DataFormatError(
                f"{path} not found; run `dvc repro export` (it writes {CARD_NAME} beside the model)"
            )
        data = read_json(path)
        known = {f.name for f in dataclasses.fields(cls)}
        missing = {"sha256", "mean", "std"} - (data.keys() if isinstance(data, dict) else set())
        if not isinstance(data, dict) or missing:
            raise DataFormatError(f"{path} lacks {sorted(missing)}; re-run the export stage")
        return cls(**{k: v for k, v in data.items() if k in known})

    def verify(self, model_path: str | os.PathLike[str]) -> None:
        """Raise :class:`ChecksumError` unless ``model_path`` is the file this card describes."""
        actual = sha256_file(model_path)
        if actual != self.sha256:
            raise ChecksumError(
                f"{model_path} has SHA-256 {actual} but {card_path(model_path)} expects "
                f"{self.sha256}; the model and its card come from different exports: "
                "re-run the export stage"
            )
