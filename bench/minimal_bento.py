"""The benchmark's middle point: the same model in the smallest BentoML service we can write.

No guard, no metrics of our own, no OpenAPI rewriting: one class, two ``async`` APIs,
ONNX Runtime inline. bench/serve_load.py puts it between the bare Starlette baseline
and our service, so the table separates what BentoML costs from what our layers cost::

    MNIST_MODEL_PATH=models/model.onnx bentoml serve bench.minimal_bento:MinimalMnist --port 3002
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml
import numpy as np

from mnist_mlops import imaging
from mnist_mlops.inference.model_card import MODEL_PATH_ENV, ModelCard
from mnist_mlops.inference.session import inference_session, softmax


@bentoml.service(name="minimal_mnist", workers=1)
class MinimalMnist:
    """ONNX Runtime behind two BentoML APIs; answers like our service (without its checks)."""

    def __init__(self) -> None:
        path = Path(os.environ.get(MODEL_PATH_ENV, "models/model.onnx"))
        self.card = ModelCard.read_beside(path)
        self.session = inference_session(path)

    def _answer(self, pixels: np.ndarray) -> dict:
        (logits,) = self.session.run([self.card.output], {self.card.input: pixels[None]})
        probs = softmax(logits)[0]
        return {"digit": int(probs.argmax()), "probabilities": probs.tolist(),
                "model_version": self.card.version}  # fmt: skip

    @bentoml.api(route="/predict_array")
    async def predict_array(self, pixels: list) -> dict:
        return self._answer(imaging.pixels_from_array(pixels))

    @bentoml.api(route="/predict")
    async def predict(self, image: Path) -> dict:
        return self._answer(imaging.preprocess_image(image.read_bytes()))
