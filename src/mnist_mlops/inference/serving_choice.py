"""Which artifact of an export serves: the gate's decision, as a file every server reads.

The export stage writes more than one artifact of the same model (``model.onnx`` in
float32, ``model.int8.onnx`` quantized), each with its card. The field stage scores each
through the serving path and decides which one answers users; it writes that decision
to ``served.json`` beside them (:data:`CHOICE_NAME`). The Bento, the image, ``make serve``
and ``pipeline.score`` resolve the artifact through it, so nothing serves an artifact the
gate has not scored, and going back to float is one setting (``MNIST_MODEL_PATH`` naming
``model.onnx``)::

    choice = ServingChoice(artifact="model.int8.onnx", precision="int8", sha256=..., reason=...)
    choice.write(Path("models"))
    resolve_artifact(Path("models/served.json"))  # -> models/model.int8.onnx, hash-checked
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from mnist_mlops.core.errors import ChecksumError, DataFormatError
from mnist_mlops.core.fileio import read_json, write_json
from mnist_mlops.inference.model_card import PRECISIONS, ModelCard

CHOICE_NAME = "served.json"  # beside the artifacts it chooses between


@dataclass(frozen=True)
class ServingChoice:
    """The gate's choice: one artifact (a file name in the choice's folder) and why."""

    artifact: str  # e.g. "model.int8.onnx": a name, never a path, so the folder can move
    precision: str  # one of PRECISIONS, as the artifact's card says
    sha256: str  # the artifact's, as its card says: a swapped file is refused
    reason: str  # one sentence: why this artifact and not the other
    version: str | None = None  # the registry version the gate judged, when tracked

    def __post_init__(self) -> None:
        if Path(self.artifact).name != self.artifact or not self.artifact.endswith(".onnx"):
            raise DataFormatError(f"served artifact {self.artifact!r} is not an .onnx file name")
        if self.precision not in PRECISIONS:
            raise DataFormatError(f"served precision {self.precision!r} is not one of {PRECISIONS}")

    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``served.json`` into ``folder`` atomically; return its path."""
        path = Path(folder) / CHOICE_NAME
        write_json(path, dataclasses.asdict(self))
        return path

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ServingChoice:
        """Read a ``served.json``; one line naming the file and the fix when it is unusable."""
        path = Path(path)
        if not path.is_file():
            raise DataFormatError(
                f"{path} not found; run `dvc repro field` (the gate writes it) or point "
                "MNIST_MODEL_PATH at a model.onnx"
            )
        data = read_json(path)
        fields = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.name != "version"}
        if not isinstance(data, dict) or not required <= data.keys():
            raise DataFormatError(
                f"{path} lacks {sorted(required - set(data or {}))}; re-run the field stage"
            )
        return cls(**{k: v for k, v in data.items() if k in fields})


def is_choice(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a serving choice (a ``.json``) rather than a model file."""
    return Path(path).suffix == ".json"


def resolve_artifact(path: str | os.PathLike[str]) -> Path:
    """The model file ``path`` stands for: itself for an ``.onnx``, the chosen artifact for a
    ``served.json`` (its card's SHA-256 checked against the choice, so a file replaced after
    the gate judged it is refused rather than served)."""
    path = Path(path)
    if not is_choice(path):
        return path
    choice = ServingChoice.read(path)
    artifact = path.with_name(choice.artifact)
    card = ModelCard.read_beside(artifact)
    if card.sha256 != choice.sha256:
        raise ChecksumError(
            f"{path} chose {choice.artifact} with SHA-256 {choice.sha256}, but its card says "
            f"{card.sha256}: the artifact changed after the gate judged it; re-run `dvc repro`"
        )
    return artifact
