"""An export as the gate leaves it, for tests of what serves: float and int8 artifacts, each
with its card, and ``served.json`` choosing one.

The int8 artifact is made here with ONNX Runtime's dynamic quantization of the float one,
so the serving side's tests need neither the export stage nor the field stage to have run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mnist_mlops.inference.model_card import ModelCard, card_path
from mnist_mlops.inference.serving_choice import ServingChoice

INT8_NAME = "model.int8.onnx"  # the export's quantized artifact, beside model.onnx


def write_int8(float_path: Path) -> Path:
    """``model.int8.onnx`` + its card beside ``float_path`` (kept if already there)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = float_path.with_name(INT8_NAME)
    if target.is_file() and card_path(target).is_file():
        return target
    quantize_dynamic(str(float_path), str(target), weight_type=QuantType.QInt8)
    card = ModelCard.read_beside(float_path)
    quantization = {"method": "dynamic", "weights": "QInt8", "tool": "onnxruntime"}
    ModelCard.for_model(
        target, mean=card.mean, std=card.std, precision="int8", quantization=quantization
    ).write_beside(target)
    return target


def gated_export(float_path: Path, folder: Path, precision: str = "int8") -> Path:
    """Copy the float model (+ card) into ``folder``, add its int8 artifact, and write the
    ``served.json`` that chooses ``precision``; return the choice's path."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / float_path.name
    if copy.resolve() != float_path.resolve():
        shutil.copy(float_path, copy)
        shutil.copy(card_path(float_path), card_path(copy))
    int8 = write_int8(copy)
    artifact = int8 if precision == "int8" else copy
    card = ModelCard.read_beside(artifact)
    return ServingChoice(
        artifact=artifact.name,
        precision=card.precision,
        sha256=card.sha256,
        reason=f"test fixture: {precision} chosen",
    ).write(folder)
