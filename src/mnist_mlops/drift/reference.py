"""The drift reference: what the service would log for images the pipeline knows are fine.

A drift report needs "normal" to compare the inference log with. Normal is what the model
was gated on: the MNIST test split and the field sets, each image taken through exactly
the serving path (encoded bytes -> :func:`mnist_mlops.imaging.preprocess_image` -> the
exported ONNX model), and described with the very columns the service logs: the predicted
digit, its probability and margin (:func:`~mnist_mlops.monitoring.records.answer_columns`,
the one definition the log's writer uses too), and
:data:`~mnist_mlops.monitoring.features.FEATURES` of the input rounded to uint8 as the log
stores it. Images the preprocessing refuses get
an error answer and no log record, so they are left out here too.

The reference stage writes it as one parquet table (one row per image, a ``set`` column
naming where it came from), so a report can compare with all of it or with some sets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from mnist_mlops.evaluation.field_inputs import SetInputs, preprocess_blobs
from mnist_mlops.evaluation.fieldsets import encode
from mnist_mlops.imaging import to_uint8
from mnist_mlops.inference.session import INPUT_NAME, as_model_input, inference_session, softmax
from mnist_mlops.monitoring.features import FEATURES, batch_features
from mnist_mlops.monitoring.records import ANSWER, answer_columns

TEST_SET = "test"  # the reference's name for the MNIST test split
COLUMNS = ("set", "label", *ANSWER, *FEATURES)


def answers(session: object, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """The service's answer for each (28, 28) 0..255 input: digit, top probability, margin."""
    if not len(inputs):
        return {name: np.zeros(0) for name in ANSWER}
    logits = session.run(None, {INPUT_NAME: as_model_input(inputs)})[0]  # type: ignore[attr-defined]
    return answer_columns(softmax(logits))


def served_inputs(blobs: list[bytes], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image through the serving preprocessing; refused ones (answered 4xx, never
    logged) dropped with their labels."""
    inputs, ok = preprocess_blobs(blobs)
    return inputs[ok], np.asarray(labels, dtype=np.int64)[ok]


def rows(session: object, name: str, inputs: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """One reference row per input, with the columns the log has (and ``set``, ``label``)."""
    table = {
        "set": np.full(len(labels), name, dtype=object),
        "label": np.asarray(labels, dtype=np.int64),
        **answers(session, inputs),
        **batch_features(to_uint8(inputs)),
    }
    return pd.DataFrame(table, columns=list(COLUMNS))


def as_png_uploads(images: np.ndarray) -> list[bytes]:
    """MNIST test digits as the PNG files a user would upload."""
    from PIL import Image

    return [encode(Image.fromarray(img, "L"), "PNG") for img in images]


def build_reference(
    onnx_path: str | os.PathLike[str],
    test_images: np.ndarray,
    test_labels: np.ndarray,
    sets: Mapping[str, SetInputs],
) -> pd.DataFrame:
    """The whole reference: ``test_images`` (MNIST test digits, uploaded as PNG files), then
    each field set as the field stage scored it (:mod:`mnist_mlops.evaluation.field_inputs`), all
    through the serving path; images the preprocessing refused are left out."""
    session = inference_session(onnx_path)
    parts = [rows(session, TEST_SET, *served_inputs(as_png_uploads(test_images), test_labels))]
    for name, s in sets.items():
        parts.append(rows(session, name, s.inputs[s.ok], s.labels[s.ok]))
    table = pd.concat(parts, ignore_index=True)
    table["digit"] = table["digit"].astype(np.int64)
    return table
