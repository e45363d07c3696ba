"""Small float models exported by the project's exporter, for the int8 tests to quantize."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_mlops.core.config import ExportConfig, QuantizeConfig


@pytest.fixture(scope="session")
def random_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, untrained MLP with batch norm, exported: its answers are arbitrary, which
    tests of files, cards and bytes do not mind."""
    import torch

    from mnist_mlops.export.to_onnx import export_onnx
    from mnist_mlops.train.network import MLP

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("random_onnx") / "model.onnx"
    export_onnx(MLP(hidden=(32, 16), batch_norm=True).eval(), path)
    return path


@pytest.fixture(scope="session")
def quantize_cfg(repo_params) -> QuantizeConfig:
    """params.yaml's ``export.quantize``, with a calibration set the synthetic split holds."""
    cfg = ExportConfig.from_params(repo_params).quantize
    return QuantizeConfig.model_validate({**cfg.model_dump(), "calibration_n": 100})
