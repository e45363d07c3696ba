"""Make an int8 copy of the exported float ONNX model, and measure what it costs in answers.

    cfg = ExportConfig.from_params(load_params()).quantize  # or QuantizeConfig(method=...)
    how = quantize_onnx("models/model.onnx", "models/model.int8.onnx", cfg, x_train)
    parity = int8_parity("models/model.onnx", "models/model.int8.onnx", x_test, y_test)

An MLP spends its time in two matrix products; int8 weights (and, for the static method,
int8 activations) make them cheaper on a CPU. ONNX Runtime offers two ways:

- ``dynamic``: weights int8 ahead of time, each batch's activation range measured as it
  runs (:func:`onnxruntime.quantization.quantize_dynamic`); needs no data.
- ``static``: activation ranges fixed ahead of time from a calibration set drawn from the
  training split, written as QuantizeLinear/DequantizeLinear pairs (QDQ) with one scale
  per output channel; ORT fuses each pair with its MatMul into an integer kernel.

``preprocess`` runs :func:`~onnxruntime.quantization.quant_pre_process` first (shape
inference and ORT's basic fusions, e.g. MatMul + BatchNormalization into one Gemm, so
fewer tensors need a scale). ``optimize`` stores the graph as ORT optimises it at load
(``SessionOptions.optimized_model_filepath``, the "extended" level): it saves load time
only, and the file then holds ONNX Runtime's own fused operators (QGemm,
DynamicQuantizeMatMul), which other runtimes cannot run. ``bench/quantize_variants.py``
measures every combination; params.yaml's ``export.quantize`` keeps the one that measured
best. The result is a pure function of the float model, the settings and the training
images, so a rerun writes the same bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import onnx
import onnxruntime as ort

from mnist_mlops.core.config import QuantizeConfig, QuantizeMethod
from mnist_mlops.core.errors import UserError
from mnist_mlops.core.fileio import atomic_path
from mnist_mlops.inference.session import (
    INPUT_NAME,
    OUTPUT_NAME,
    as_model_input,
    inference_session,
    softmax,
)

METHODS: tuple[str, ...] = get_args(QuantizeMethod)
CALIBRATION_BATCH = 256  # images per calibration run: ranges are min/max, so any split works


def int8_path(float_path: str | os.PathLike[str]) -> Path:
    """Where the int8 model of ``float_path`` lives: ``model.onnx`` -> ``model.int8.onnx``."""
    path = Path(float_path)
    return path.with_name(f"{path.stem}.int8{path.suffix}")


def quantization_card(cfg: QuantizeConfig) -> dict[str, Any]:
    """What the int8 model's card says about how it was made (enough to make it again)."""
    static = cfg.method == "static"
    return {
        **cfg.model_dump(),
        "format": "QDQ" if static else "QOperator",
        "per_channel": static,
        "weight_type": "int8",
        # Dynamic: each batch's activations are quantized to uint8 as it runs.
        "activation_type": "int8" if static else "uint8",
        "calibration_n": cfg.calibration_n if static else 0,  # dynamic reads no data
        "seed": cfg.seed if static else None,
        "onnxruntime": ort.__version__,
    }


@dataclass(frozen=True)
class Int8Parity:
    """How the int8 model's answers compare with the float model's on one labelled set."""

    n_images: int
    agreement: float  # share of images where both models pick the same digit
    mismatches: int  # images where they do not
    max_prob_diff: float  # largest |p_int8 - p_float| over every image and class
    test_accuracy: float  # the int8 model's
    float_test_accuracy: float


def calibration_images(x_train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` training images drawn without replacement by ``seed`` (the same ones every run)."""
    if not 0 < n <= len(x_train):
        raise UserError(
            f"export.quantize.calibration_n is {n} but the train split has {len(x_train)} "
            "images; choose 1..that many"
        )
    pick = np.sort(np.random.default_rng(seed).choice(len(x_train), size=n, replace=False))
    return as_model_input(x_train[pick])


class _Calibration:
    """ORT's CalibrationDataReader protocol over raw 0..255 pixels (the graph normalises)."""

    def __init__(self, images: np.ndarray) -> None:
        self._batches: Iterator[np.ndarray] = (
            images[i : i + CALIBRATION_BATCH] for i in range(0, len(images), CALIBRATION_BATCH)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_onnx(
    float_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    cfg: QuantizeConfig,
    x_train: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write the int8 model of ``float_path`` to ``out_path`` (atomically); how it was made.

    ``x_train`` (uint8 (N, 28, 28)) is needed by the static method only. A float model ORT
    cannot read or quantize is a one-line :class:`UserError`, ``out_path`` left untouched.
    """
    if cfg.method == "static" and x_train is None:
        raise UserError("static quantization needs the training images for its calibration")
    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        work = Path(tmp)
        try:
            source = _preprocessed(Path(float_path), work) if cfg.preprocess else Path(float_path)
            quantized = work / "int8.onnx"
            _quantize(source, quantized, cfg, x_train)
            if cfg.optimize:
                quantized = _optimized(quantized, work)
            model = onnx.load(str(quantized))
            model.doc_string = (
                f"MNIST MLP, int8 ({cfg.method}): raw pixels 0..255 as float32 (N, 28, 28)"
                " -> 10 logits"
            )
            onnx.checker.check_model(model)
        except UserError:
            raise
        except Exception as exc:  # ORT and onnx raise many types for a model they cannot use
            raise UserError(
                f"{float_path}: cannot quantize ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'no message'}); "
                "re-run the export stage, or try another export.quantize.method"
            ) from None
        with atomic_path(out_path) as target:
            onnx.save(model, str(target))
    return quantization_card(cfg)


def _preprocessed(float_path: Path, work: Path) -> Path:
    from onnxruntime.quantization import quant_pre_process

    out = work / "preprocessed.onnx"
    quant_pre_process(str(float_path), str(out))
    return out


def _quantize(source: Path, out: Path, cfg: QuantizeConfig, x_train: np.ndarray | None) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if cfg.method == "dynamic":
        quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8)
        return
    assert x_train is not None  # checked by the caller
    quantize_static(
        str(source),
        str(out),
        _Calibration(calibration_images(x_train, cfg.calibration_n, cfg.seed)),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )


def _optimized(model: Path, work: Path) -> Path:
    """The graph as ORT rewrites it at load ("extended": fusions every CPU can run)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(work / "optimized.onnx")
    ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    return work / "optimized.onnx"


def int8_parity(
    float_path: str | os.PathLike[str],
    int8_path: str | os.PathLike[str],
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 2000,
) -> Int8Parity:
    """Run both models on ``images`` (uint8 (N, 28, 28)) and compare their answers."""
    threads = os.cpu_count() or 1
    float_s, int8_s = (inference_session(p, threads=threads) for p in (float_path, int8_path))
    agree = right_f = right_q = 0
    max_diff = 0.0
    for start in range(0, len(images), batch_size):
        batch = as_model_input(images[start : start + batch_size])
        truth = labels[start : start + batch_size]
        p_f = softmax(float_s.run([OUTPUT_NAME], {INPUT_NAME: batch})[0])
        p_q = softmax(int8_s.run([OUTPUT_NAME], {INPUT_NAME: batch})[0])
        max_diff = max(max_diff, float(np.abs(p_f - p_q).max()))
        agree += int((p_f.argmax(1) == p_q.argmax(1)).sum())
        right_f += int((p_f.argmax(1) == truth).sum())
        right_q += int((p_q.argmax(1) == truth).sum())
    n = len(images)
    return Int8Parity(
        n_images=n,
        agreement=agree / n,
        mismatches=n - agree,
        max_prob_diff=max_diff,
        test_accuracy=right_q / n,
        float_test_accuracy=right_f / n,
    )
