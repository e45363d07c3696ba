"""The docs say what the files say: the results page, the stage table, links, make targets.

docs/results.md is the output of the report stage (pipeline/report.py), rendered from the
metrics, params and bench files; `dvc repro` renders it again whenever one of them changes.
These tests check the stage (that it reads what it declares, writes what they say, and
fails in one line on a broken input), not whether this working tree's page happens to
match its metrics: after any `dvc repro` it does, by construction.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_mlops.reporting.results import READS

ROOT = Path(__file__).resolve().parents[1]
PAGE = "docs/results.md"
INPUTS = (*READS, PAGE)


def report(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The report stage's command, run on the repository copy at ``root``."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.report", PAGE, "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The files the report reads, in a scratch repository root."""
    for name in INPUTS:
        src, dst = ROOT / name, tmp_path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy2(src, dst)
    return tmp_path


def test_the_report_stage_depends_on_everything_the_page_reads() -> None:
    """A file the renderer reads but the stage does not declare would leave the page stale
    after `dvc repro`; the page itself must be the stage's uncached output (kept in git)."""
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]
    assert stage["cmd"] == f"python -m pipeline.report {PAGE}"
    assert set(READS) <= set(stage["deps"]), sorted(set(READS) - set(stage["deps"]))
    assert stage["outs"] == [{PAGE: {"cache": False}}]


def test_the_page_is_rendered_from_the_declared_inputs_alone(copy: Path) -> None:
    """Rendering a copy that holds only READS gives a complete page, and rendering twice
    changes nothing: the page depends on those files and nothing else (no clock, no cwd)."""
    (copy / PAGE).unlink()
    assert report(copy).returncode == 0
    first = (copy / PAGE).read_text()
    assert (
        first.startswith("# Results") and "## Field sets" in first and "## Configuration" in first
    )
    assert report(copy, "--check").returncode == 0
    assert report(copy).returncode == 0 and (copy / PAGE).read_text() == first


def test_a_new_metric_value_reaches_the_page(copy: Path) -> None:
    field = copy / "metrics/field.json"
    data = json.loads(field.read_text())
    data["sets"]["photo"]["accuracy"] = 0.5
    field.write_text(json.dumps(data))

    stale = report(copy, "--check")
    assert stale.returncode == 2
    assert stale.stderr.strip().splitlines() == [
        "error: docs/results.md is stale: run `dvc repro report` and commit it"
    ]

    assert report(copy).returncode == 0
    page = (copy / "docs/results.md").read_text()
    assert "| photo | 50.0 % | 44.4 % .. 55.6 % | 300 | 0 |" in page
    assert report(copy, "--check").returncode == 0
    assert sorted(p.name for p in (copy / "docs").iterdir()) == ["results.md"]  # no temp left


def test_every_bench_result_file_is_rendered_or_named(copy: Path) -> None:
    (copy / "bench/results/new_bench.json").write_text("{}")
    assert report(copy).returncode == 0
    page = (copy / "docs/results.md").read_text()
    unread = [line for line in page.splitlines() if line.startswith("Not rendered here: ")]
    assert len(unread) == 1 and "`bench/results/new_bench.json`" in unread[0], unread
    rendered = {"preprocess_speed.json", "serve_load.json", "bulk_score.json"}
    assert not [name for name in rendered if f"`bench/results/{name}`" in unread[0]]


@pytest.mark.parametrize("broken", ["missing", "not json"])
def test_an_unreadable_metrics_file_is_one_line_naming_it(copy: Path, broken: str) -> None:
    path = copy / "metrics/evaluate.json"
    path.unlink() if broken == "missing" else path.write_text("{not json")
    done = report(copy)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "metrics/evaluate.json" in lines[0]
    assert (copy / "docs/results.md").read_bytes() == (ROOT / "docs/results.md").read_bytes()


def _stage_rows(page: str) -> dict[str, list[str]]:
    """docs/architecture.md's stage table: stage -> its cells."""
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 5 and cells[0] not in ("stage", "---"):
            rows[cells[0]] = cells
    return rows


def test_the_architecture_stage_table_is_dvc_yaml() -> None:
    """The rooms and params each stage is documented with are what dvc.yaml declares."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    rows = _stage_rows((ROOT / "docs/architecture.md").read_text())
    assert list(rows) == list(stages)
    for name, spec in stages.items():
        rooms = {d.split("/")[2] for d in spec["deps"] if d.startswith("src/mnist_mlops/")}
        assert set(re.findall(r"`(\w+)`", rows[name][1])) == rooms, name
        assert set(re.findall(r"`([\w.]+)`", rows[name][3])) == set(spec.get("params", [])), name


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Written on other branches; the links are in the README already.
PENDING: set[str] = set()


def test_every_relative_link_points_at_a_file() -> None:
    missing = set()
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path = target.split("#")[0]
            if path and not re.match(r"[a-z]+:", path):
                resolved = (page.parent / path).resolve()
                if not resolved.exists():
                    missing.add(str(resolved.relative_to(ROOT)))
    assert missing <= PENDING, sorted(missing - PENDING)


def test_every_make_target_the_docs_name_exists() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))
    named = set()
    for page in PAGES:
        text = page.read_text()
        named |= set(re.findall(r"`make ([a-z][\w-]*)", text))
        named |= set(re.findall(r"^\s*(?:[A-Z_]+=\S+ )*make ([a-z][\w-]*)", text, re.M))
    assert named and named <= targets, sorted(named - targets)
