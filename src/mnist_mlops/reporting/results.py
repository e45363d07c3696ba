"""Render the results page (docs/results.md) from the files the pipeline and benchmarks write.

Numbers that change with every run live in metrics/*.json (the DVC stages), bench/results/
(the benchmarks) and params.yaml; prose copied from them goes stale on the next run. So the
page is the output of the ``report`` stage (``python -m pipeline.report``), which ``dvc
repro`` reruns whenever one of :data:`READS` changes; nobody edits it by hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mnist_mlops.core.errors import UserError
from mnist_mlops.core.fileio import atomic_open
from mnist_mlops.reporting import int8
from mnist_mlops.reporting.bench import bench_sections
from mnist_mlops.reporting.markdown import load, pct, table

# Every path the page is rendered from, relative to the repository root: the report
# stage's deps in dvc.yaml must name each one (tests/test_docs.py checks), or a changed
# file would leave the page stale after `dvc repro`.
READS = (
    "metrics/train.json",
    "metrics/evaluate.json",
    "metrics/per_class.json",
    "metrics/export.json",
    "metrics/field.json",
    "metrics/champion.json",
    "bench/results",
    "params.yaml",
)
SKIPPED_SECTIONS = ("download",)  # mirror URLs and checksums, not results
Z95 = 1.96


def wilson(p: float, n: int) -> tuple[float, float]:
    """95 % Wilson interval of an accuracy: honest at 100 % too, where p +- z*se says +-0."""
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def read(root: Path, name: str) -> dict:
    return load(root / name)


def configuration(root: Path) -> str:
    """Every params.yaml value the run used, by section (dvc.yaml says which stage reads
    which; a DVC file cannot be a stage's dependency, so the page does not read it)."""
    params = read(root, "params.yaml")
    rows = []
    for section, values in params.items():
        if section in SKIPPED_SECTIONS:
            continue
        items = values.items() if isinstance(values, dict) else [("", values)]
        for key, value in items:
            name = f"{section}.{key}" if key else section
            rows.append([section, f"`{name}`", f"`{json.dumps(value)}`"])
    return "## Configuration (`params.yaml`)\n\n" + table(["section", "key", "value"], rows)


def model_quality(root: Path) -> str:
    train, ev, export = (read(root, f"metrics/{n}.json") for n in ("train", "evaluate", "export"))
    test = ev["test"]
    rows = [
        ["test accuracy", f"{pct(test['accuracy'])} ({test['errors']:,} wrong of {test['n']:,})"],
        ["test loss / macro F1", f"{test['loss']:.4f} / {test['macro_f1']:.4f}"],
        ["best validation accuracy", pct(train["best_val_acc"])],
        ["last epoch: train / val loss", f"{train['train/loss']:.4f} / {train['val/loss']:.4f}"],
        ["epochs, parameters", f"{train['epochs']}, {train['n_parameters']:,}"],
        [
            "training time",
            f"{train['seconds']:.0f} s on {train['device']}"
            + (f", {train['precision']}" if "precision" in train else ""),
        ],
        [
            "ONNX parity (export)",
            f"max abs logit difference {export['max_abs_diff']:.1e} (tolerance {export['atol']:g}),"
            f" {export['argmax_mismatches']} argmax mismatches on {export['n_images']:,} images",
        ],
    ]
    rows += int8.export_row(export)
    if "diagnosis" in train:
        rows.append(["learning-curve diagnosis", train["diagnosis"]])
    per_class = read(root, "metrics/per_class.json")
    classes = [
        [d, pct(c["precision"]), pct(c["recall"]), pct(c["f1"]), f"{c['support']:,}"]
        for d, c in per_class.items()
    ]
    confused = [[c["true"], c["predicted"], c["count"]] for c in ev["most_confused"]]
    shifts = ev["shift_accuracy"]
    return "\n\n".join(
        [
            "## MNIST test (`metrics/train.json`, `evaluate.json`, `export.json`)",
            table(["", ""], rows),
            "Per class (`metrics/per_class.json`):",
            table(["digit", "precision", "recall", "F1", "images"], classes),
            "Most confused pairs:",
            table(["true", "predicted", "images"], confused),
            "Accuracy with every test digit moved by a few pixels (mean of four directions):",
            table(
                ["shift", *(f"{s} px" for s in shifts)], [["accuracy", *map(pct, shifts.values())]]
            ),
        ]
    )


def field(root: Path) -> str:
    data = read(root, "metrics/field.json")
    rows = []
    for name, s in data["sets"].items():
        low, high = wilson(s["accuracy"], s["n"])
        rows.append(
            [name, pct(s["accuracy"], 1), f"{pct(low, 1)} .. {pct(high, 1)}", s["n"], s["refused"]]
        )
    champ = data["champion"]
    verdict = (
        f"promoted to `champion` (previous champion: version {champ['previous'] or 'none'})"
        if champ["promoted"]
        else f"not promoted: worse than the champion on {', '.join(champ['worse_on'])}"
    )
    return "\n\n".join(
        [
            "## Field sets (`metrics/field.json`)",
            "Realistic images scored through the serving path (bytes -> imaging -> ONNX) with "
            "the served artifact; the interval is where the true accuracy lies with 95 % "
            "confidence given the set's size.",
            table(["set", "accuracy", "95 % interval", "images", "refused"], rows),
            f"Lowest set: {pct(data['min_accuracy'], 1)}. This model was {verdict}.",
            *int8.served_lines(data),
        ]
    )


def served(root: Path) -> str:
    """Which registry version serves and why: the champion stage's one line."""
    data = read(root, "metrics/champion.json")
    return "\n".join(
        [
            "## Served (`metrics/champion.json`)",
            "",
            f"`models:/{data['model']}@champion` is version {data['version']} "
            f"({data['precision']}, SHA-256 `{data['sha256'][:12]}`): what `make serve`, the image "
            "and the Bento serve (`models/champion/`, written by the champion stage).",
            "",
            f"> {data['line']}",
        ]
    )


def render(root: Path) -> str:
    """The whole page for the repository at ``root``, from the files in :data:`READS`."""
    parts = [
        "# Results",
        "<!-- Generated by the report stage (`dvc repro report`, python -m pipeline.report) "
        "from metrics/*.json, params.yaml and bench/results/. Do not edit: "
        "`dvc repro` renders it again whenever those files change. -->",
        "What the last pipeline run (`dvc repro`) and the last benchmark runs measured. "
        "After a benchmark, `dvc repro report` renders it again.",
        served(root),
        model_quality(root),
        field(root),
        *bench_sections(root),
        configuration(root),
    ]
    return "\n\n".join(parts) + "\n"


def write_page(root: Path, page: Path, check: bool = False) -> bool:
    """Render ``root / page`` atomically; with ``check``, only compare.

    Returns whether the page already held exactly this text. A results file that lacks
    a key the page shows is one line naming the key, not a traceback.
    """
    try:
        text = render(root)
    except KeyError as exc:
        raise UserError(f"a results file lacks the key {exc}; rerun what writes it") from exc
    out = root / page
    current = out.exists() and out.read_text() == text
    if check:
        if not current:
            raise UserError(f"{page} is stale: run `dvc repro report` and commit it")
        return True
    with atomic_open(out, "w") as handle:
        handle.write(text)
    return current
