"""The drift report on real data: a real trained model, the reference stage's table, and
inference logs written by the service's own log writer for images taken through the
serving path (preprocessing + ONNX), as ``python -m pipeline.monitor`` reads them.

Fresh clean canvas drawings (the draw page's style, other seeds than the reference's) must
show no drift; fresh thick-marker drawings must, naming the features that moved; the HTML
report must render those columns in a real Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mnist_mlops.data.splits import load_splits
from mnist_mlops.drift.reference import served_inputs
from mnist_mlops.evaluation.field_inputs import build_field_inputs, save_field_inputs
from mnist_mlops.evaluation.fieldsets import build_set
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.inference.session import INPUT_NAME, as_model_input, inference_session, softmax
from mnist_mlops.monitoring.inference_log import InferenceLog
from mnist_mlops.monitoring.settings import MonitoringSettings
from support import ROOT

pytestmark = pytest.mark.slow

N = 300  # images per log: a day of a small service
SCREENSHOT = ROOT / "artifacts" / "drift-report.png"


class Counters:
    def __init__(self) -> None:
        self.lost = 0

    def written(self, records: int) -> None:
        pass

    def dropped(self, reason: str, records: int) -> None:
        self.lost += records

    def failed(self, stage: str) -> None:
        self.lost += 1


def processed_dir(model: Path) -> Path:
    """The split the model came with: the repo's data/processed, or the trained fixture's."""
    for candidate in (model.parents[1] / "data" / "processed", model.parents[1] / "processed"):
        if (candidate / "mnist.npz").exists():
            return candidate
    pytest.fail(f"no processed split beside {model}")


def write_log(folder: Path, model: Path, blobs: list[bytes], source: str) -> int:
    """The service's log writer, fed what the service would answer for ``blobs``."""
    inputs, _ = served_inputs(blobs, np.zeros(len(blobs), np.int64))
    session = inference_session(model)
    probabilities = softmax(session.run(None, {INPUT_NAME: as_model_input(inputs)})[0])
    card = ModelCard.read_beside(model)
    log = InferenceLog(MonitoringSettings(log_dir=folder), card.version, card.sha256, Counters())
    for pixels, probs in zip(inputs, probabilities):
        log.record(pixels[None], probs[None], endpoint="/predict", source=source)
    assert log.flush()
    log.close()
    return len(inputs)


def monitor(log_dir: Path, reference: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    paths = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    command = [sys.executable, "-m", "pipeline.monitor", "--log-dir", str(log_dir),
               "--reference", str(reference), "--html", str(out / "drift.html"),
               "--json", str(out / "drift.json"), "--params", str(ROOT / "params.yaml"),
               *extra]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def reference(trained_model: Path, tmp_path_factory: pytest.TempPathFactory, stage_cli) -> Path:
    """The reference stage's table for the repo's params, from only the sets the monitor
    counts as normal, served as the field stage serves them (the field stage serves the
    others too; the report never reads them)."""
    folder = tmp_path_factory.mktemp("reference")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    names = [s for s in params["monitor"]["reference_sets"] if s != "test"]
    splits, _ = load_splits(processed_dir(trained_model))
    field = params["field"]
    inputs = folder / "field_inputs.npz"
    sets = build_field_inputs(
        names, splits.x_test, splits.y_test, field["n_per_set"], field["seed"]
    )
    save_field_inputs(inputs, sets)
    out = folder / "reference.parquet"
    proc = stage_cli(
        "reference", str(trained_model), str(processed_dir(trained_model)), str(out),
        "--field-inputs", str(inputs), "--params", str(ROOT / "params.yaml"), timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def styled(model: Path, name: str, seed: int, n: int = N) -> list[bytes]:
    splits, _ = load_splits(processed_dir(model))
    return build_set(name, splits.x_test, splits.y_test, n, seed)[0]


@pytest.fixture(scope="module")
def reports(trained_model, reference, tmp_path_factory) -> dict[str, tuple[Any, dict]]:
    """The monitor's exit, line and JSON for a clean and a shifted log."""
    out: dict[str, tuple[Any, dict]] = {}
    for name, style, seed in (("clean", "canvas", 1001), ("marker", "marker", 1002)):
        folder = tmp_path_factory.mktemp(name)
        write_log(folder / "log", trained_model, styled(trained_model, style, seed), "ui")
        proc = monitor(folder / "log", reference, folder / "report")
        out[name] = (proc, json.loads((folder / "report" / "drift.json").read_text()))
        print(name, proc.stdout.strip())
    return out


def test_clean_canvas_drawings_show_no_drift(reports):
    proc, report = reports["clean"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("no drift:") and report["status"] == "no_drift"
    assert report["rows"] == N and report["skipped"] == 0


def test_thick_marker_digits_drift_and_the_report_names_what_moved(reports):
    proc, report = reports["marker"]
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.startswith("DRIFT:") and report["status"] == "drift"
    assert len(report["drifted"]) >= 2
    for column in report["drifted"]:
        assert f"{column} (" in proc.stdout
        assert report["scores"][column]["score"] >= report["scores"][column]["threshold"]
    # A thick marker leaves a bolder digit after preprocessing than MNIST's pen.
    assert {"ink_fraction", "stroke_width", "mean_intensity"} & set(report["drifted"])
    clean = reports["clean"][1]["scores"]
    for column in report["drifted"]:
        assert report["scores"][column]["score"] > clean[column]["score"]


def test_too_few_rows_and_corrupt_batches_are_reported_not_guessed(
    trained_model, reference, tmp_path
):
    write_log(tmp_path / "log", trained_model, styled(trained_model, "marker", 5, n=20), "upload")
    with open(next((tmp_path / "log").glob("inference-*.arrows")), "ab") as handle:
        handle.write(b"\xff\xff\xff\xff\x10\x00\x00\x00half a batch")  # a write cut short
    proc = monitor(tmp_path / "log", reference, tmp_path / "report")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "no verdict: 20 answered images" in proc.stdout
    assert "1 corrupt or unusable log records skipped" in proc.stdout
    report = json.loads((tmp_path / "report" / "drift.json").read_text())
    assert report["status"] == "too_few_rows" and report["skipped"] == 1
    assert not (tmp_path / "report" / "drift.html").exists()


def test_bad_input_is_one_line_and_exit_2(reference, tmp_path):
    missing = monitor(tmp_path / "nowhere", reference, tmp_path / "r")
    assert missing.returncode == 2 and "MNIST_INFERENCE_LOG_DIR" in missing.stderr
    (tmp_path / "log").mkdir()
    no_ref = monitor(tmp_path / "log", tmp_path / "none.parquet", tmp_path / "r")
    assert no_ref.returncode == 2 and "dvc repro reference" in no_ref.stderr
    bad_time = monitor(tmp_path / "log", reference, tmp_path / "r", "--since", "yesterday")
    assert bad_time.returncode == 2 and "ISO 8601" in bad_time.stderr
    for proc in (missing, no_ref, bad_time):
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright by path (no browser download)."""
    if os.environ.get("MNIST_SKIP_BROWSER") == "1":
        pytest.skip("MNIST_SKIP_BROWSER=1: browser tests skipped on purpose")
    path = os.environ.get("MNIST_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("Chromium not found: scripts/install_system_packages.sh installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.browser
def test_the_html_report_renders_the_drifted_columns(reports, chromium, tmp_path):
    proc, report = reports["marker"]
    html = Path(report_path(proc))
    page = chromium.new_page(viewport={"width": 1280, "height": 1600})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(html.as_uri())
    # Evidently draws the report with its bundled JavaScript: wait for the drift table.
    page.wait_for_function(
        "cols => cols.every(c => document.body.innerText.includes(c))",
        arg=report["drifted"],
        timeout=60_000,
    )
    text = page.inner_text("body")
    assert "Dataset Drift is detected" in text
    for column, score in report["scores"].items():
        row = page.locator("tr", has_text=column).first.inner_text()
        verdict = "Detected" if score["drifted"] else "Not Detected"
        assert verdict in row and ("Not Detected" in row) == (not score["drifted"]), row
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=False)
    page.close()
    assert not errors, errors


def report_path(proc: subprocess.CompletedProcess) -> str:
    return proc.args[proc.args.index("--html") + 1]
