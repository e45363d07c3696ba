"""bench/quantize_variants.py runs in its quick mode and writes every variant's row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnist_mlops.export.quantize import METHODS


@pytest.mark.slow
def test_quantize_variants_quick(bench, bench_model: Path, processed_dir: Path, tmp_path: Path):
    out = tmp_path / "quantize_variants.json"
    bench("bench/quantize_variants.py", str(bench_model), str(processed_dir), "--quick",
          "--out", str(out))  # fmt: skip
    data = json.loads(out.read_text())
    rows = data["variants"]
    assert set(rows) == {"float"} | {
        f"{m}{pre}{opt}" for m in METHODS for pre in ("", "+pre") for opt in ("", "+opt")
    }
    assert rows["float"]["one_image_ratio"] == 1.0 and data["machine"]["cpus"]
    for name, row in rows.items():
        assert row["one_image_us"] > 0 and row["batch_per_image_us"] > 0, name
        if name != "float":
            assert row["deterministic"] is True and row["n_images"] == 200, name
            assert 0.0 <= row["agreement"] <= 1.0 and 0.0 <= row["max_prob_diff"] <= 1.0
