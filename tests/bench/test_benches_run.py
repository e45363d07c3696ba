"""Each benchmark in bench/ runs: its quick mode exits 0 and writes the JSON it promises.

A benchmark that no test runs breaks silently, and its next reader finds out on the GPU box
or before a release. Here each runs as a real subprocess on small synthetic data and an
untrained model, in seconds; no number is checked for speed, only the shape of what it
writes (keys, rows, counts). bench/gpu_session.sh needs a GPU: its commands and flags are
checked against the scripts it calls, and those scripts run here on CPU.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnist_mlops.core.config import FieldConfig
from support import ROOT
from support.tools import need


def read_json(path: Path) -> Any:
    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    assert path.is_file(), f"{path} was not written"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- training --------------------------------------------------------------------------


@pytest.mark.slow
def test_train_speed_quick(bench, processed_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "train_speed.json"
    bench("bench/train_speed.py", str(processed_dir), "--quick", "--out", str(out))
    data = read_json(out)
    assert set(data["runs"]) == {"a", "b", "c"}  # on CPU; b-fast and c-same need a GPU
    for run in data["runs"].values():
        assert len(run["epochs"]) == 1 and 0.0 <= run["epochs"][0]["test_acc"] <= 1.0
        assert run["cfg"]["hidden"] == [32]
    assert set(data["ratios"]) == {"a_over_c", "b_over_c"} and data["targets"]


@pytest.mark.slow
def test_accuracy_quick(bench, processed_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "accuracy.jsonl"
    bench("bench/accuracy.py", str(processed_dir), "--quick", "--seeds", "1,2", "--out", str(out))
    rows = read_jsonl(out)
    assert [r["seed"] for r in rows] == [1, 2]
    for row in rows:
        assert row["epochs"] == 1 and 0.0 <= row["test_acc"] <= 1.0
        assert row["overrides"] == {"max_epochs": 1, "hidden": [32]}


def test_prepare_data_builds_the_split(
    bench, synthetic_mirror, params_writer, tmp_path: Path
) -> None:
    """What gpu_session.sh runs first: the .gz files of a mirror folder to data/processed."""
    mirror, sha = synthetic_mirror
    params = params_writer(tmp_path / "params.yaml", download={"sha256": sha},
                           split={"val_size": 100})  # fmt: skip
    out = tmp_path / "processed"
    bench("bench/prepare_data.py", str(mirror), str(out), "--params", str(params))
    with np.load(out / "mnist.npz") as npz:
        assert len(npz["x_val"]) == 100 and npz["x_train"].shape[1:] == (28, 28)
    assert (out / "stats.json").is_file()


def test_gpu_session_calls_what_exists() -> None:
    """The GPU script cannot run here: each script it calls exists and takes its flags."""
    script = (ROOT / "bench" / "gpu_session.sh").read_text().replace("\\\n", " ")
    # Shell functions that wrap a script (``best() { ... python3 bench/accuracy.py ...``).
    wrappers = dict(re.findall(r"(\w+)\(\) \{[\s\S]*?python3 (bench/\S+\.py)", script))
    checked = set()
    for line in script.splitlines():
        called = re.search(r"python3 (bench/\S+\.py)", line)
        words = line.split()
        path = called.group(1) if called else wrappers.get(words[0] if words else "")
        if path is None:
            continue
        source = (ROOT / path).read_text()
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line):
            assert f'"{flag}"' in source, f"gpu_session.sh passes {flag} to {path}"
        checked.add(path)
    assert checked >= {"bench/prepare_data.py", "bench/accuracy.py", "bench/train_speed.py"}


def test_int8_compare_calls_what_exists() -> None:
    """bench/run_int8_compare.sh runs for minutes on a quiet machine: it parses, and each
    script it calls exists and takes the flags it passes (their quick runs are tested here)."""
    path = ROOT / "bench" / "run_int8_compare.sh"
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    script = path.read_text().replace("\\\n", " ")
    called = set()
    for line in script.splitlines():
        script_path = re.search(r"(bench/\w+\.py)", line)
        if line.lstrip().startswith("#") or script_path is None:
            continue
        source = (ROOT / script_path.group(1)).read_text()
        flags = re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line) + ["--quick"]
        flags += ["--models"] if "MODELS" in line else []
        for flag in flags:
            assert f'"{flag}"' in source, f"run_int8_compare.sh passes {flag} to {script_path[1]}"
        called.add(script_path.group(1))
    assert called == {"bench/serve_load.py", "bench/bulk_score.py", "bench/serve_profile.py"}


# ---- preprocessing, scoring, monitoring ----------------------------------------------------


def test_preprocess_speed_quick(bench, tmp_path: Path) -> None:
    out = tmp_path / "preprocess_speed.json"
    bench("bench/preprocess_speed.py", "--quick", "--out", str(out))
    data = read_json(out)
    assert data["repeat"] == 2 and len(data["rows"]) == 3
    for row in data["rows"]:
        assert {"image", "decode_ms", "preprocess_ms", "ratio"} <= set(row)


def test_monitor_cost_quick(bench, tmp_path: Path) -> None:
    out = tmp_path / "monitor_cost.json"
    bench("bench/monitor_cost.py", "--quick", "--out", str(out))
    data = read_json(out)
    assert set(data["us_per_image"]) == {"bentoml_monitor_request", "ours_request", "ours_writer"}
    assert data["bentoml_monitor_bad_folder"]


@pytest.mark.slow
def test_drift_scale_quick(bench, synthetic_mirror, tmp_path: Path) -> None:
    out = tmp_path / "drift_scale.json"
    bench("bench/drift_scale.py", str(synthetic_mirror[0]), "--quick", "--out", str(out))
    data = read_json(out)
    assert [row["records"] for row in data["rows"]] == [2_000, 20_000]
    for row in data["rows"]:
        assert set(row["methods"]) == {"window", "every_file", "dicts", "report"}
        assert {m["rows"] for m in row["methods"].values()} == {data["window_records"]}
        assert row["methods"]["report"]["exit_status"] in (0, 3)  # a verdict, either way


@pytest.mark.slow
def test_bulk_score_quick(bench, bench_model: Path, bench_int8_model: Path, tmp_path: Path) -> None:
    """Two models in one run (what a single --model run does, once more)."""
    out = tmp_path / "bulk_score.json"
    bench("bench/bulk_score.py", "--models", f"float32={bench_model}", f"int8={bench_int8_model}",
          "--quick", "--out", str(out))  # fmt: skip
    data = read_json(out)
    assert [(r["case"], r["model"], r["n"]) for r in data["rows"]] == [
        ("local, .npy", "float32", 1000),
        ("local, .npy", "int8", 1000),
        ("local, image folder", "float32", 100),
        ("local, image folder", "int8", 100),
    ]
    assert all(r["images_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in data["rows"])
    (pair,) = data["model_ratios"]
    assert pair == "int8/float32"
    assert [(r["case"], r["n"]) for r in data["model_ratios"][pair]] == [
        ("local, .npy", 1000),
        ("local, image folder", 100),
    ]


# ---- HTTP: wrk or a Python client against served processes ----------------------------------


@pytest.mark.slow
def test_serve_load_quick(bench, bench_model: Path, tmp_path: Path) -> None:
    need("wrk", "taskset")
    out = tmp_path / "serve_load.json"
    bench("bench/serve_load.py", "--quick", "--model", str(bench_model), "--payloads", "array",
          "--servers", "bentoml-minimal,ours", "--out", str(out))  # fmt: skip
    data = read_json(out)
    assert set(data["results"]) == {"starlette", "bentoml-minimal", "ours"}
    for by_payload in data["results"].values():
        cell = by_payload["array"]
        assert len(cell["closed"]) == 3 and cell["peak_rps"] > 0
        assert all(c["non_2xx"] == 0 for c in cell["closed"])
    assert set(data["ratios"]) == {"array"}
    assert data["models"] == data["direct"] == data["model_ratios"] == {}


@pytest.mark.slow
def test_serve_load_models_quick(bench, bench_model: Path, bench_int8_model: Path,
                                 tmp_path: Path) -> None:  # fmt: skip
    """Our service once per model (``--models``), the baseline on the first model."""
    need("wrk", "taskset")
    out = tmp_path / "serve_load.json"
    bench("bench/serve_load.py", "--quick", "--payloads", "array", "--servers", "ours",
          "--out", str(out), "--models", f"float32={bench_model}",
          f"int8={bench_int8_model}")  # fmt: skip
    data = read_json(out)
    assert set(data["results"]) == {"starlette", "ours-float32", "ours-int8"}
    for by_payload in data["results"].values():
        cell = by_payload["array"]
        assert len(cell["closed"]) == 3 and cell["peak_rps"] > 0
        assert all(c["non_2xx"] == 0 for c in cell["closed"])
    assert data["server_models"]["starlette"] == str(bench_model)
    assert data["server_models"]["ours-int8"] == str(bench_int8_model)
    assert set(data["ratios_by_server"]["ours-int8"]) == {"array"}
    assert {m: d["precision"] for m, d in data["models"].items()} == {
        "float32": "float32",
        "int8": "int8",
    }
    assert set(data["model_ratios"]["ours int8/float32"]["array"]) == {"peak_rps", "cpu", "p50_c1"}
    assert all(r["one"] > 0 and r["batch"] > 0 for r in data["direct"].values())
    assert set(data["direct_ratios"]["int8/float32"]) == {"one", "batch"}


@pytest.mark.slow
def test_serve_profile_quick(bench, bench_int8_model: Path, tmp_path: Path) -> None:
    need("wrk", "taskset")
    out = tmp_path / "serve_profile.json"
    bench("bench/serve_profile.py", "--quick", "--model", str(bench_int8_model),
          "--payloads", "array,npy", "--out", str(out))  # fmt: skip
    data = read_json(out)
    assert data["model"]["precision"] == "int8" and set(data["routes"]) == {"array", "npy"}
    for route in data["routes"].values():
        assert route["samples"] > 0 and route["load"]["non_2xx"] == 0
        shares = [a["share"] for a in route["areas"]]
        assert shares == sorted(shares, reverse=True) and sum(shares) <= 1.001
        assert sum(p["share"] for p in route["processes"]) <= 1.001  # busy samples only
        assert not any(f["function"].startswith("process ") for f in route["total"])
        assert route["largest"]["area"] == route["areas"][0]
        assert route["largest"]["function"] == route["self"][0]


@pytest.mark.slow
def test_serve_bulk_quick(bench, bench_model: Path, tmp_path: Path) -> None:
    need("taskset")
    out = tmp_path / "serve_bulk.json"
    bench("bench/serve_bulk.py", "--quick", "--model", str(bench_model), "--out", str(out))
    data = read_json(out)
    assert set(data["results"]) == set(data["ratios"]) == {"16", "64", "256"}
    assert all(set(cells) == {"json", "npy"} for cells in data["results"].values())


@pytest.mark.slow
def test_serve_ab_quick(bench, bench_model: Path, tmp_path: Path) -> None:
    need("wrk", "taskset")
    out = tmp_path / "serve_ab.json"
    bench("bench/serve_ab.py", "--quick", "--a", f"one={ROOT}", "--b", f"two={ROOT}",
          "--model", str(bench_model), "--payloads", "array", "--out", str(out))  # fmt: skip
    row = read_json(out)["results"]["array"]
    assert set(row) == {"one", "two"}
    assert all(len(r["runs"]) == 1 and r["runs"][0]["non_2xx"] == 0 for r in row.values())


# ---- research (bench/research): the field sets -----------------------------------------------


@pytest.mark.slow
def test_field_ideas_quick(bench, processed_dir: Path, repo_params, tmp_path: Path) -> None:
    out = tmp_path / "ideas.jsonl"
    bench("-m", "bench.research.field_ideas", "tiny", "--quick", "--processed", str(processed_dir),
          "--work", str(tmp_path / "work"), "--results", str(out))  # fmt: skip
    (row,) = read_jsonl(out)
    field = FieldConfig.from_params(repo_params)
    generated = [s for s in field.sets if s != "writers"]  # writers: all its digits, not quick
    assert row["name"] == "tiny" and row["epochs"] == 1 and 0.0 <= row["test"] <= 1.0
    assert {f"{s}@{field.seed}" for s in generated} | {f"min_other@{field.seed}"} == {
        k for k in row if "@" in k
    }


def test_readability_quick(bench, processed_dir: Path, bench_model: Path, repo_params,
                           tmp_path: Path) -> None:  # fmt: skip
    bench("-m", "bench.research.readability", "marker", "--quick", "--onnx", str(bench_model),
          "--processed", str(processed_dir), "--out", str(tmp_path))  # fmt: skip
    summary = read_json(tmp_path / "readability_marker_summary.json")
    seed = FieldConfig.from_params(repo_params).seed
    assert summary["n"] == 20 and list(summary["seeds"]) == [str(seed)]
    assert (tmp_path / "readability_marker.png").stat().st_size > 0


def test_writers_misses_quick(bench, bench_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "writers.json"
    bench("-m", "bench.research.writers_misses", str(bench_model), "--quick", "--out", str(out))
    data = read_json(out)
    assert set(data["accuracy"]) == {"served", "no_stroke", "clean", "grey"}
    assert sum(d["misses"] for d in data["per_digit"].values()) <= 50
    assert out.with_suffix(".npz").is_file()
