"""The int8 model: made by ONNX Runtime's quantizer from an exported float model, the same
bytes on every run, runnable like the float one, compared with it answer by answer; a
model it cannot quantize is one line naming the fix, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mnist_mlops.core.config import ExportConfig, QuantizeConfig
from mnist_mlops.core.errors import UserError
from mnist_mlops.core.fileio import sha256_file
from mnist_mlops.data.splits import load_splits
from mnist_mlops.export.quantize import (
    METHODS,
    calibration_images,
    int8_parity,
    int8_path,
    quantization_card,
    quantize_onnx,
)
from mnist_mlops.inference.model_card import ModelCard, card_path
from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME, inference_session

VARIANTS = [(m, pre, opt) for m in METHODS for pre in (False, True) for opt in (False, True)]


@pytest.fixture(scope="module")
def splits(processed_dir):
    return load_splits(processed_dir)[0]


def variant(cfg: QuantizeConfig, method: str, pre: bool, opt: bool) -> QuantizeConfig:
    return QuantizeConfig.model_validate(
        {**cfg.model_dump(), "method": method, "preprocess": pre, "optimize": opt}
    )


def test_the_int8_model_sits_beside_the_float_one_with_a_card_of_its_own():
    assert int8_path("models/model.onnx") == Path("models/model.int8.onnx")
    assert card_path(int8_path("models/model.onnx")) == Path("models/model.int8.json")


@pytest.mark.parametrize(("method", "pre", "opt"), VARIANTS)
def test_every_variant_runs_like_the_float_model_and_is_the_same_bytes_twice(
    random_onnx, quantize_cfg, splits, tmp_path, method, pre, opt
):
    cfg = variant(quantize_cfg, method, pre, opt)
    first, second = tmp_path / "a.int8.onnx", tmp_path / "b.int8.onnx"
    quantize_onnx(random_onnx, first, cfg, splits.x_train)
    quantize_onnx(random_onnx, second, cfg, splits.x_train)
    assert first.read_bytes() == second.read_bytes()
    assert first.stat().st_size < random_onnx.stat().st_size / 2  # int8 weights
    session = inference_session(first)
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, out.name) == (INPUT_NAME, ["batch", 28, 28], OUTPUT_NAME)
    for n in (1, 7):
        logits = session.run(None, {INPUT_NAME: splits.x_test[:n].astype(np.float32)})[0]
        assert logits.shape == (n, 10) and logits.dtype == np.float32
        assert np.isfinite(logits).all()
    assert not list(tmp_path.glob(".*")), "a temporary file was left beside the model"


def test_the_card_says_how_it_was_made_and_vouches_for_the_file(
    random_onnx, quantize_cfg, splits, tmp_path
):
    path = int8_path(tmp_path / "model.onnx")
    how = quantize_onnx(random_onnx, path, quantize_cfg, splits.x_train)
    assert how == quantization_card(quantize_cfg)
    assert {"method", "format", "per_channel", "calibration_n", "seed", "onnxruntime"} <= set(how)
    if quantize_cfg.method == "static":
        assert how["format"] == "QDQ" and how["per_channel"] is True
        assert how["calibration_n"] == 100
    ModelCard.for_model(path, mean=0.13, std=0.31, precision="int8", quantization=how).write_beside(
        path
    )
    card = ModelCard.read_beside(path)
    card.verify(path)
    assert card.sha256 == sha256_file(path) and card.precision == "int8"
    assert card.quantization == how
    assert card_path(path).name == "model.int8.json"


def test_parity_counts_agreement_and_the_largest_probability_difference(
    random_onnx, quantize_cfg, splits, tmp_path
):
    path = tmp_path / "model.int8.onnx"
    quantize_onnx(random_onnx, path, quantize_cfg, splits.x_train)
    parity = int8_parity(random_onnx, path, splits.x_test, splits.y_test, batch_size=64)
    n = len(splits.x_test)
    assert parity.n_images == n
    assert 0.0 <= parity.agreement <= 1.0 and parity.mismatches == round(n * (1 - parity.agreement))
    assert 0.0 <= parity.max_prob_diff <= 1.0
    assert 0.0 <= parity.test_accuracy <= 1.0 and 0.0 <= parity.float_test_accuracy <= 1.0
    itself = int8_parity(random_onnx, random_onnx, splits.x_test, splits.y_test)
    assert (itself.agreement, itself.mismatches, itself.max_prob_diff) == (1.0, 0, 0.0)


def test_calibration_draws_the_same_training_images_for_the_same_seed(splits):
    a, b = calibration_images(splits.x_train, 50, seed=1), calibration_images(splits.x_train, 50, 1)
    assert a.shape == (50, 28, 28) and a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, calibration_images(splits.x_train, 50, seed=2))
    with pytest.raises(UserError, match="export.quantize.calibration_n"):
        calibration_images(splits.x_train, len(splits.x_train) + 1, seed=0)


def _other_input_model(path: Path) -> Path:
    """A valid ONNX model that is not ours: its input is named ``x``, not ``pixels``."""
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


@pytest.mark.parametrize("broken", ["truncated", "not_onnx", "other_input", "too_many"])
def test_a_model_it_cannot_quantize_is_one_line_and_nothing_is_written(
    random_onnx, quantize_cfg, splits, tmp_path, broken
):
    source, cfg = tmp_path / "model.onnx", quantize_cfg
    if broken == "truncated":
        source.write_bytes(random_onnx.read_bytes()[:5000])
    elif broken == "not_onnx":
        source.write_text("<html>not a model</html>")
    elif broken == "other_input":
        _other_input_model(source)
        cfg = variant(quantize_cfg, "static", True, False)
    else:
        source = random_onnx
        cfg = QuantizeConfig.model_validate({**cfg.model_dump(), "method": "static",
                                             "calibration_n": len(splits.x_train) + 1})  # fmt: skip
    out = tmp_path / "model.int8.onnx"
    with pytest.raises(UserError) as caught:
        quantize_onnx(source, out, cfg, splits.x_train)
    message = str(caught.value)
    assert "\n" not in message and "export.quantize" in message, message
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_params_name_the_bad_quantize_key(repo_params):
    bad = {**repo_params["export"], "quantize": {**repo_params["export"]["quantize"],
                                                 "method": "float16"}}  # fmt: skip
    with pytest.raises(UserError, match=r"export\.quantize\.method"):
        ExportConfig.from_params({"export": bad})
    missing = {k: v for k, v in repo_params["export"]["quantize"].items() if k != "seed"}
    with pytest.raises(UserError, match=r"export\.quantize\.seed is missing"):
        ExportConfig.from_params({"export": {**repo_params["export"], "quantize": missing}})
