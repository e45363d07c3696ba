"""The champion-against-challenger report: a JSON file for scripts, an HTML page for people.

The page is plain HTML with its own inline SVG histograms (no scripts, no network), so it
opens from a scheduler's output folder or a mail attachment as it is. Both files are
written atomically: a reader never sees half a report.
"""

from __future__ import annotations

import html
import os
from dataclasses import asdict
from typing import Any

from mnist_mlops.core.fileio import atomic_open, write_json
from mnist_mlops.drift.challenger import BINS, Verdict
from mnist_mlops.drift.pairs import ROLES, Pairs

COLOURS = {"champion": "#3b6ea8", "challenger": "#d9822b"}


def payload(verdict: Verdict, window: Pairs) -> dict[str, Any]:
    """What the JSON holds: the verdict's fields, its line, the window and its counts."""
    return {
        **asdict(verdict),
        "line": verdict.line(),
        "exit_status": verdict.exit_status,
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "records": {
            "in_window": window.records,
            "pairs": len(window.pairs),
            "single_model": window.single,
            "skipped": window.skipped,
            "outside_window": window.outside,
        },
        "histogram_edges": [i / BINS for i in range(BINS + 1)],
    }


def write_report(
    verdict: Verdict,
    window: Pairs,
    html_path: str | os.PathLike[str],
    json_path: str | os.PathLike[str],
) -> None:
    """Both files, each atomically; the HTML shows exactly what the JSON holds."""
    data = payload(verdict, window)
    write_json(json_path, data)
    with atomic_open(html_path, "w") as out:
        out.write(render_html(data))


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{100 * rate:.1f} %"


def _ci(ci: list[float] | tuple[float, float] | None) -> str:
    return "–" if ci is None else f"{100 * ci[0]:.1f} – {100 * ci[1]:.1f} %"


def _table(rows: list[list[object]], head: list[str]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def _svg(histograms: dict[str, list[int]]) -> str:
    """Both models' confidence histograms as side-by-side bars, one group per bin."""
    width, height, pad = 640, 220, 30
    top = max([1, *(c for counts in histograms.values() for c in counts)])
    group = (width - 2 * pad) / BINS
    bars = []
    for i in range(BINS):
        for j, role in enumerate(ROLES):
            h = (height - 2 * pad) * histograms[role][i] / top
            x = pad + i * group + j * group / 2
            bars.append(
                f'<rect x="{x:.1f}" y="{height - pad - h:.1f}" width="{group / 2 - 1:.1f}" '
                f'height="{h:.1f}" fill="{COLOURS[role]}"><title>{role} '
                f"{i / BINS:.2f}-{(i + 1) / BINS:.2f}: {histograms[role][i]}</title></rect>"
            )
    ticks = "".join(
        f'<text x="{pad + i * group * 4:.1f}" y="{height - 10}" font-size="11">{i * 4 / BINS:.1f}'
        "</text>"
        for i in range(BINS // 4 + 1)
    )
    legend = "".join(
        f'<text x="{width - 170 + 90 * j}" y="16" fill="{COLOURS[r]}" font-size="12">{r}</text>'
        for j, r in enumerate(ROLES)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f"{''.join(bars)}{ticks}{legend}</svg>"
    )


def render_html(data: dict[str, Any]) -> str:
    """The page: the verdict line, the window's counts, the numbers, the histograms."""
    acc, paired, agree = data["accuracy"], data["paired"], data["agreement"]
    level = f"{100 * (1 - data['alpha']):g} %"
    numbers = [
        ["agreement (all pairs)", agree["n"], agree["k"], _pct(agree["rate"]), _ci(agree["ci"])],
        *(
            [f"{role} correct (corrected pairs)", acc[role]["n"], acc[role]["k"],
             _pct(acc[role]["rate"]), _ci(acc[role]["ci"])]
            for role in ROLES
        ),
    ]  # fmt: skip
    diff, span = paired["difference"], paired["difference_ci"]
    tested = [
        ["only the champion right", paired["champion_only"]],
        ["only the challenger right", paired["challenger_only"]],
        ["McNemar exact p-value", f"{paired['p_value']:.4g}"],
        ["challenger minus champion", "–" if diff is None else f"{100 * diff:+.1f} points"],
        [
            f"its {level} interval (Wald, paired)",
            "–" if span is None else f"{100 * span[0]:+.1f} to {100 * span[1]:+.1f} points",
        ],
    ]
    records = [[k.replace("_", " "), v] for k, v in data["records"].items()]
    versions = [[r, ", ".join(f"{v} ({n})" for v, n in data["versions"][r].items()) or "–"]
                for r in ROLES]  # fmt: skip
    answered = [[r, data["answered_by"].get(r, 0)] for r in ROLES]
    window = data["window"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Champion against challenger</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.3em .6em}}
td:not(:first-child){{text-align:right}}</style></head><body>
<h1>Champion against challenger</h1>
<p><strong>{html.escape(data["line"])}</strong> (exit {data["exit_status"]})</p>
<p>Window {html.escape(window["start"])} to {html.escape(window["end"])}.</p>
<h2>Records in the window</h2>{_table(records, ["records", "count"])}
<h2>Agreement and accuracy</h2>
{_table(numbers, ["", "n", "count", "rate", f"{level} interval (Wilson)"])}
<h2>Paired test on the corrected pairs</h2>{_table(tested, ["", ""])}
<h2>Corrected pairs by the model that answered</h2>{_table(answered, ["answered by", "pairs"])}
<p>Users correct mostly answers they saw were wrong, and they see only the answering model's.</p>
<h2>Versions (pairs)</h2>{_table(versions, ["role", "registry versions"])}
<h2>Confidence on every pair</h2>{_svg(data["histograms"])}
</body></html>
"""
