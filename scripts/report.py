"""Render docs/results.md from the files the pipeline and the benchmarks write.

    python scripts/report.py           # (make report) rewrite docs/results.md, atomically
    python scripts/report.py --check   # exit 2 if docs/results.md is not what the files say

Numbers that change with every run live in metrics/*.json (the DVC stages), bench/results/
(the benchmarks) and params.yaml; prose copied from them goes stale on the next run. So the
results page is rendered, never edited, and tests/test_docs.py fails when it disagrees with
the committed files.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from report_bench import bench_sections
from report_format import load, pct, table

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.errors import UserError
from mnist_mlops.core.fileio import atomic_open

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("docs/results.md")
SKIPPED_STAGES = ("download",)  # its params are mirror URLs and checksums, not results
Z95 = 1.96


def wilson(p: float, n: int) -> tuple[float, float]:
    """95 % Wilson interval of an accuracy: honest at 100 % too, where p +- z*se says +-0."""
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def read(root: Path, name: str) -> dict:
    return load(root / name)


def configuration(root: Path) -> str:
    """Each stage's params (the keys dvc.yaml declares), with their params.yaml values."""
    params, stages = read(root, "params.yaml"), read(root, "dvc.yaml")["stages"]
    rows = []
    for stage, spec in stages.items():
        for key in [] if stage in SKIPPED_STAGES else spec.get("params", []):
            value = params
            for part in key.split("."):
                value = value[part]
            items = value.items() if isinstance(value, dict) else [("", value)]
            for sub, v in items:
                name = f"{key}.{sub}" if sub else key
                rows.append([stage, f"`{name}`", f"`{json.dumps(v)}`"])
    return "## Configuration (`params.yaml`, the keys each stage reads)\n\n" + table(
        ["stage", "key", "value"], rows
    )


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
            "Realistic images scored through the serving path (bytes -> imaging -> ONNX); the "
            "interval is where the true accuracy lies with 95 % confidence given the set's size.",
            table(["set", "accuracy", "95 % interval", "images", "refused"], rows),
            f"Lowest set: {pct(data['min_accuracy'], 1)}. This model was {verdict}.",
        ]
    )


def render(root: Path = ROOT) -> str:
    parts = [
        "# Results",
        "<!-- Generated by `make report` (scripts/report.py) from metrics/*.json, dvc.yaml, "
        "params.yaml and bench/results/. Do not edit: tests/test_docs.py fails when this page "
        "and those files disagree. -->",
        "What the committed pipeline run (`dvc repro`) and the last benchmark runs measured. "
        "Rerun them, then `make report`.",
        model_quality(root),
        field(root),
        *bench_sections(root),
        configuration(root),
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    try:
        text = render(args.root)
    except KeyError as exc:
        raise UserError(f"a results file lacks the key {exc}; rerun what writes it") from exc
    target = args.root / OUT
    if args.check:
        if not target.exists() or target.read_text() != text:
            raise UserError(f"{OUT} is stale: run `make report` and commit it")
        return
    with atomic_open(target, "w") as handle:
        handle.write(text)
    print(f"wrote {target}")


if __name__ == "__main__":
    run_stage(main)
