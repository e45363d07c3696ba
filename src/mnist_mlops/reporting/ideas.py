"""The results page's research tables: training ideas on the field sets, and a person's
calls on a set's misses (the rows of bench/research/field_ideas.py and readability.py)."""

from __future__ import annotations

from pathlib import Path

from mnist_mlops.reporting.markdown import load, pct, table

FILE = "bench/results/field_ideas.jsonl"
SETS = ("photo", "marker", "pen", "canvas", "fonts")


def field_ideas(root: Path) -> list[str]:
    """One row per idea: MNIST test, real writers, each field set at both seeds."""
    path = root / FILE
    if not path.exists():
        return []
    rows, found = [], load(path)
    # The draws are the seeds the rows hold ("marker@13"), lowest first; older rows lack
    # the later ones.
    seeds = sorted({int(k.rsplit("@", 1)[1]) for r in found for k in r if k.startswith("photo@")})
    for r in found:
        cells = [" / ".join(pct(r[f"{s}@{seed}"], 1) if f"{s}@{seed}" in r else "–"
                            for seed in seeds) for s in SETS]  # fmt: skip
        what = ", ".join(r.get("kinds", [])) + (
            "; " + ", ".join(f"{k}={v}" for k, v in r["overrides"].items())
            if r.get("overrides") else ""
        )  # fmt: skip
        train = f"{r['train_s']:.0f} s" if "train_s" in r else "not retrained"
        rows.append([r["name"], what or "main's model", pct(r["test"]), pct(r["writers@7"], 1),
                     *cells, train + (f" ({r['note']})" if r.get("note") else "")])  # fmt: skip
    return [
        f"## Training ideas on the field sets (`{FILE}`, `bench/research/field_ideas.py`)",
        "Each idea trained with the pipeline's own train and export code on 2 CPU cores, then "
        "scored through the serving path on the same draws: MNIST test, all 1,797 real "
        f"writers, and {', '.join(SETS)} at field seeds {' / '.join(map(str, seeds))} (300 "
        "images each: one image is 0.33 points; ideas were chosen on the first, and the last "
        "was added after every earlier row had been read on the others). Prepare kinds, then "
        "the train keys that differ from the params.yaml of the time.",
        table(["idea", "kinds; overrides", "MNIST test", "writers", *SETS, "training"], rows),
    ]


def readability(root: Path) -> list[str]:
    """Per set and draw (bench/research/readability.py): the model's misses by a person's
    call, and the ceiling those calls put on the set."""
    rows = []
    for path in sorted((root / "bench/results").glob("readability_*_summary.json")):
        summary = load(path)
        for seed, r in summary["seeds"].items():
            ceiling = "not judged" if r["ceiling"] is None else pct(r["ceiling"], 1)
            rows.append([summary["set"], seed, pct(r["accuracy"], 1), r["readable"],
                         r["ambiguous"], r["unreadable"], r["unjudged"], ceiling])  # fmt: skip
    if not rows:
        return []
    return [
        "## Field-set misses a person would read (`bench/research/readability.py`)",
        "Each miss of the served model (`models/model.onnx`), judged by a person from the "
        "upload (the calls and a grid of the misses: `bench/results/readability_<set>.json` "
        "and `.png`): readable at once, ambiguous, or read as another digit or none. The "
        "ceiling is the accuracy of a reader who gets every image right but those called "
        "unreadable, whichever model missed them (an upper bound).",
        table(
            ["set", "seed", "model", "readable", "ambiguous", "unreadable", "unjudged", "ceiling"],
            rows,
        ),  # fmt: skip
    ]
