"""ONNX Runtime inference helpers shared by the export stage and the service.

numpy + onnxruntime only: the service imports this without torch installed.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"


def as_model_input(pixels: np.ndarray) -> np.ndarray:
    """(N, 784) or (N, 28, 28) raw pixels -> the graph's float32 (N, 28, 28)."""
    return np.ascontiguousarray(pixels, dtype=np.float32).reshape(-1, 28, 28)


def inference_session(path: str | os.PathLike[str], threads: int = 1) -> ort.InferenceSession:
    """A CPU session with a small thread pool that does not busy-spin.

    ONNX Runtime's default pool spins waiting for work, which on a 2-core box
    steals the CPU from the HTTP server's own threads; one intra-op thread per
    worker, no spinning, keeps concurrent requests from oversubscribing cores.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row max so large logits cannot overflow."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
