"""Score encoded images as users' uploads are scored: preprocess each, then one ONNX batch.

The field stage scores the inputs the evaluation code already preprocessed
(``score_inputs``); tests start from image bytes, so this adds the preprocessing.
"""

from __future__ import annotations

import os

import numpy as np

from mnist_mlops.evaluation.field_inputs import preprocess_blobs
from mnist_mlops.evaluation.fieldscore import SetScore, score_inputs


def score_set(
    onnx_path: str | os.PathLike[str], blobs: list[bytes], labels: np.ndarray
) -> SetScore:
    """Preprocess every image as the service does (a refusal, a 4xx for the user, is a
    miss), then one ONNX Runtime batch."""
    inputs, ok = preprocess_blobs(blobs)
    return score_inputs(onnx_path, inputs, labels, ok)
