"""The one object that turns pixels into predictions, in every engine.

:class:`OnnxPredictor` holds one ONNX Runtime session. The local engine calls it
in-process; the Ray engine passes the class itself to ``map_batches``, so each
Ray actor builds one session whose thread count matches the CPUs Ray gave the
actor. Both therefore run the same code on the same batch sizes, which is what
makes their predictions equal. The model travels as bytes, so an actor on
another machine needs no copy of the file.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from mnist_mlops.inference.session import INPUT_NAME, OUTPUT_NAME, softmax

BATCH = 8192  # images per session.run: large enough to amortise the call, small in memory


def make_session(model: bytes, threads: int) -> ort.InferenceSession:
    """A CPU session using ``threads`` intra-op threads and no busy-spinning.

    Spinning threads would steal the CPUs that image decoding (or another actor)
    needs; measured in bench/bulk_score.py, it buys nothing on whole batches.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


class OnnxPredictor:
    """``{"pixels": float32 (n, 28, 28), ...}`` -> the same dict plus digit, prob and probs.

    Other columns (ids, errors) pass through untouched; ``pixels`` is dropped from
    the result, since nothing downstream needs it and it is most of the bytes.
    """

    def __init__(self, model: bytes, threads: int = 1, batch: int = BATCH) -> None:
        self.session = make_session(model, threads)
        self.batch = batch

    def predict(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """digit (int8), top probability and all ten probabilities (float32) per image."""
        probs = np.empty((len(pixels), 10), dtype=np.float32)
        for start in range(0, len(pixels), self.batch):
            chunk = np.ascontiguousarray(pixels[start : start + self.batch], dtype=np.float32)
            logits = self.session.run([OUTPUT_NAME], {INPUT_NAME: chunk})[0]
            probs[start : start + len(chunk)] = softmax(logits)
        digits = probs.argmax(axis=1).astype(np.int8)
        return digits, probs[np.arange(len(probs)), digits], probs

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {k: v for k, v in batch.items() if k != "pixels"}
        out["digit"], out["prob"], out["probs"] = self.predict(batch["pixels"])
        return out
