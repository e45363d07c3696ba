"""The docs' claims that drift with the code are rendered from it or checked against it.

Two kinds of claim drift silently, because nothing else reads them:

- **Which rooms may import which** (and so what the serving app imports). The source is
  ``ALLOWED`` and ``SERVING_SIDE`` in ``tests/test_layers.py``, which the layer tests
  enforce; the docs hold a copy between marker comments
  (``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``) that must equal what those render.
  Rewrite every block in place with::

      python tests/test_docs_claims.py

- **The shape of the JSON answers.** Every answer example in the HTTP docs is compared
  with the service's own OpenAPI document (the one ``GET /docs.json`` serves, built here
  without starting a server): each field the schema requires is shown, and no field is
  shown that the schema lacks. An example is any JSON object in those files with an
  answer's key (``"probabilities"``, ``"predictions"``, ``"duplicate"``, ``"error"``);
  ``[...]`` and a bare ``...`` stand for elided values.

Cheaper claims are checked where they are written: pipeline.md's list of stages against
dvc.yaml and its train keys against params.yaml; architecture.md's Layout against the
rooms; every `section.key` the docs name against params.yaml; every `module.name` they
name (``serving.errors.INPUT_ERRORS``) against the code and every source path against the
tree; the settings tables of monitoring.md and serving.md against the defaults in the
code; the error tables against the statuses and reason labels the service answers with.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_layers import SERVING_SIDE, render_arrows, render_serving_side, rooms

from mnist_mlops.core.fileio import atomic_open

ROOT = Path(__file__).resolve().parents[1]

FIX = "python tests/test_docs_claims.py"

# Generated blocks: name -> (the page holding it, what it must say).
BLOCKS: dict[str, tuple[str, Callable[[], str]]] = {
    "allowed-imports": ("docs/architecture.md", render_arrows),
    "serving-imports": ("docs/serving.md", render_serving_side),
}

# The pages that show JSON answers, and those that must show at least one prediction.
ANSWER_PAGES = (
    "README.md",
    "docs/http-api.md",
    "docs/serving.md",
    "docs/monitoring.md",
    "docs/loop.md",
)
MUST_SHOW_A_PREDICTION = ("README.md", "docs/http-api.md", "docs/serving.md")

# An answer's key -> the routes whose 200 JSON answer it belongs to (None: the error body,
# the same on every route).
ANSWER_KEYS: dict[str, tuple[str, ...] | None] = {
    "probabilities": ("/predict", "/predict_array"),
    "predictions": ("/predict_batch", "/predict_npy"),
    "duplicate": ("/feedback",),
    "error": None,
}


# --- generated blocks -----------------------------------------------------------------


def _block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:start -->\n)(.*?)(\n<!-- {name}:end -->)", re.S)


def block_text(name: str) -> str | None:
    """What the page holds between ``name``'s markers (None: no such block)."""
    page, _ = BLOCKS[name]
    found = _block_pattern(name).search((ROOT / page).read_text())
    return found.group(2) if found else None


def rewrite_blocks() -> list[str]:
    """Write every block's rendering into its page (atomically); the pages changed."""
    changed = []
    for name, (page, render) in BLOCKS.items():
        path = ROOT / page
        text = path.read_text()
        found = _block_pattern(name).search(text)
        if not found:
            raise SystemExit(f"error: {page} has no <!-- {name}:start/end --> markers")
        new = text[: found.start(2)] + render() + text[found.end(2) :]
        if new != text:
            with atomic_open(path, "w") as out:
                out.write(new)
            changed.append(page)
    return changed


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_generated_block_matches_the_code(name: str) -> None:
    page, render = BLOCKS[name]
    held = block_text(name)
    assert held is not None, f"{page} lost its <!-- {name}:start/end --> markers"
    assert held == render(), f"{page}'s {name} block is stale: run `{FIX}` to rewrite it"


def test_no_page_lists_the_serving_rooms_outside_a_generated_block() -> None:
    """A hand-written list of what serving imports goes stale with ``SERVING_SIDE``; the
    generated blocks are the one place that says it."""
    serving_rooms = rf"\b({'|'.join(SERVING_SIDE)})\b"
    stale = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for name in BLOCKS:
            text = _block_pattern(name).sub("", text)
        for line in text.splitlines():
            if re.search(rf"imports? only\b[^.]*{serving_rooms}", line):
                stale.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert not stale, "say it in a generated block (or link to one):\n" + "\n".join(stale)


# --- stages and settings named in the docs ---------------------------------------------


def _stages() -> list[str]:
    return list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])


def _section(page: str, heading: str) -> str:
    """The lines of ``page`` under ``heading`` up to the next heading of its level or above
    (a ``#`` line inside a fenced code block is a comment, not a heading)."""
    lines = (ROOT / page).read_text().splitlines()
    level = len(heading.split(" ")[0])
    start = lines.index(heading) + 1
    fenced = False
    for end in range(start, len(lines)):
        fenced ^= lines[end].startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", lines[end]):
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def test_pipeline_md_describes_every_stage_in_order() -> None:
    described = re.findall(r"^- \*\*(\w+)\*\*", _section("docs/pipeline.md", "## Stages"), re.M)
    assert described == _stages(), "docs/pipeline.md's Stages list differs from dvc.yaml"


def test_pipeline_md_lists_every_train_key() -> None:
    section = _section("docs/pipeline.md", "## Parameters")
    table = [line for line in section.splitlines() if line.startswith("| `")]
    named = {key for line in table for key in re.findall(r"`(\w+)`", line.split("|")[1])}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    assert named == set(params), (
        f"docs/pipeline.md's train keys table: missing {sorted(set(params) - named)}, "
        f"unknown {sorted(named - set(params))}"
    )


# Dotted names that start like a params section but are files or modules.
NOT_PARAMS = {"mlflow.db", "mlflow.data"}


def test_every_params_key_the_docs_name_exists() -> None:
    """A `section.key` in the docs names a key of params.yaml, so renaming a key leaves no
    stale name behind; file names such as `field.json` are not keys."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    named = re.compile(rf"`((?:{'|'.join(params)})\.[A-Za-z_][\w.]*)`")
    unknown = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if path.name == "results.md":  # generated from params.yaml itself
            continue
        for name in set(named.findall(path.read_text())) - NOT_PARAMS:
            node: Any = params
            for part in name.split("."):
                node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
            if node is KeyError and not re.search(r"\.(py|json|yaml|npz|csv|png|md)$", name):
                unknown.append(f"{path.relative_to(ROOT)}: {name}")
    assert not unknown, "not in params.yaml:\n" + "\n".join(sorted(unknown))


def _table_rows(page: str, heading: str | None = None) -> list[list[str]]:
    """Every markdown table row of ``page`` (under ``heading``), cells without backticks."""
    text = _section(page, heading) if heading else (ROOT / page).read_text()
    return [
        [cell.strip().replace("`", "") for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| ")
    ]


def _status_rows(page: str, heading: str) -> dict[int, list[str]]:
    """The rows of the table under ``heading`` that start with HTTP statuses, by status
    (a row "404 / 405" gives both)."""
    rows = {}
    for row in _table_rows(page, heading):
        codes = [c.strip() for c in row[0].split("/")]
        if all(c.isdigit() for c in codes):
            rows.update({int(c): row for c in codes})
    return rows


def test_the_error_tables_list_the_statuses_the_code_answers() -> None:
    """The statuses in the docs' error tables are the ones the OpenAPI document lists
    (serving.errors.PREDICT_ERROR_STATUSES, serving.feedback.FEEDBACK_ERROR_STATUSES), and
    each `reason` label in serving.md is the one /metrics counts it under (serving.errors.REASONS).
    """
    from serving import errors, feedback

    api = set(_status_rows("docs/http-api.md", "## Errors"))
    assert api == set(errors.PREDICT_ERROR_STATUSES), "docs/http-api.md's Errors table"
    corrections = set(_status_rows("docs/monitoring.md", "## Corrections: `POST /feedback`"))
    assert corrections == {200, *feedback.FEEDBACK_ERROR_STATUSES}, (
        "docs/monitoring.md's /feedback table"
    )
    labels = {}
    for row in _status_rows("docs/serving.md", "## Errors").values():
        codes = [c.strip() for c in row[0].split("/")]
        names = [n.strip() for n in row[2].split("/")] if row[2] else []
        labels.update(zip(codes, names, strict=False))
    assert {int(c): n for c, n in labels.items()} == errors.REASONS, (
        "docs/serving.md's Errors table: the reason labels differ from serving.errors.REASONS"
    )
    assert set(errors.PREDICT_ERROR_STATUSES) <= set(_status_rows("docs/serving.md", "## Errors"))


def _shown(value: object) -> str:
    """A default as the docs write it: on/off, 16 rather than 16.0, an empty list as empty."""
    if isinstance(value, tuple | list) and not value:
        return "empty"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_monitoring_md_shows_every_monitoring_setting_with_its_default() -> None:
    from mnist_mlops.monitoring.settings import ENV, MonitoringSettings

    defaults = MonitoringSettings()
    shown = {}
    for row in _table_rows("docs/monitoring.md"):
        names = row[0].split(", ")
        if all(name in ENV.values() for name in names):
            shown.update(zip(names, row[1].split(", "), strict=True))
    expected = {name: _shown(getattr(defaults, field)) for field, name in ENV.items()}
    assert shown == expected, "docs/monitoring.md's settings table differs from the code"


def test_serving_md_shows_each_limit_s_default() -> None:
    """docs/serving.md's limits table shows each service setting's default (serving.settings)."""
    from serving.settings import ENV, ServiceSettings

    defaults = ServiceSettings()
    expected = {name: getattr(defaults, field) for field, name in ENV.items()}
    shown = {
        row[2]: row[1] for row in _table_rows("docs/serving.md") if row[2:3] and row[2] in expected
    }
    assert shown == {
        name: f"{_shown(value)} s" if name.endswith("_S") else _shown(value)
        for name, value in expected.items()
    }, "docs/serving.md's limits table differs from serving/settings.py"


def _module_of(parts: list[str]) -> tuple[Path, list[str]] | None:
    """The file of the longest module prefix of ``parts``, and the names after it."""
    for i in range(len(parts), 0, -1):
        for base in (ROOT / "src", ROOT):
            path = base.joinpath(*parts[:i])
            for candidate in (path.with_suffix(".py"), path / "__init__.py"):
                if candidate.is_file():
                    return candidate, parts[i:]
    return None


def _defined(path: Path) -> set[str]:
    """The names a module defines or imports at any level (read, not imported)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def test_every_module_and_name_the_docs_name_exists() -> None:
    """`serving.errors.INPUT_ERRORS`, `imaging.preprocess_image`, `gate.decide...`:
    a renamed function or module leaves no stale name in the docs. Names that are also
    params keys (`train.devices`) are checked above."""
    room_names = set(rooms())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    dotted = re.compile(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?`")
    stale = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if path.name == "results.md":
            continue
        for name in sorted(set(dotted.findall(path.read_text()))):
            parts = name.split(".")
            if parts[0] in params and parts[1] in params[parts[0]]:
                continue
            if parts[0] in room_names:
                parts = ["mnist_mlops", *parts]
            elif parts[0] not in {"mnist_mlops", "serving", "pipeline"}:
                continue
            found = _module_of(parts)
            where = f"{path.relative_to(ROOT)}: {name}"
            if found is None:
                stale.append(f"{where} (no such module)")
            elif found[1] and found[1][0] not in _defined(found[0]):
                stale.append(f"{where} (not in {found[0].relative_to(ROOT)})")
    assert not stale, "\n".join(stale)


# A path into the repository's own code, as the docs write one (outputs such as models/
# are left out: they exist only after `dvc repro`). A path with a placeholder is skipped.
SOURCE_PATH = re.compile(
    r"(?<![\w./<-])((?:src|serving|pipeline|tests|bench|scripts|deploy|requirements|\.ci)"
    r"/[\w./-]*[\w/])(?:::(\w+))?(?![\w./<*{$-])"
)


def test_every_source_path_the_docs_name_exists() -> None:
    """Files move (tests by subject, bench/research/); a path in the docs moves with them,
    and a `file.py::test_name` names a test that is still there."""
    missing = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if path.name == "results.md":
            continue
        for name, function in sorted(set(SOURCE_PATH.findall(path.read_text()))):
            target = ROOT / name
            if not target.exists():
                missing.append(f"{path.relative_to(ROOT)}: {name}")
            elif function and not re.search(rf"def {function}\b", target.read_text()):
                missing.append(f"{path.relative_to(ROOT)}: {name}::{function}")
    assert not missing, "no such file or test:\n" + "\n".join(missing)


def test_architecture_md_layout_lists_every_room() -> None:
    """The Layout block names each room of src/mnist_mlops once (a new room is described)."""
    layout = _section("docs/architecture.md", "## Layout")
    listed = re.findall(r"^  (\w+)/ ", layout, re.M)
    assert sorted(listed) == rooms(), "docs/architecture.md's Layout differs from src/mnist_mlops"


# --- answer examples against the OpenAPI document --------------------------------------


@cache
def openapi() -> dict[str, Any]:
    """The document ``GET /docs.json`` serves, built the same way, with no server.

    ``serving.front.ApiFront`` builds it from the options the service registers the front
    with; importing the service loads no model (that happens per worker).
    """
    from serving.front import ApiFront
    from serving.service import MnistClassifier

    (options,) = [kw for cls, kw in MnistClassifier.middlewares if cls is ApiFront]
    return json.loads(json.dumps(options["openapi"](options["routes"])))  # as served


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = openapi()
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def answer_schema(key: str) -> list[tuple[str, dict[str, Any]]]:
    """(where, schema) of every answer an example with ``key`` must fit."""
    routes = ANSWER_KEYS[key]
    if routes is None:
        return [("ErrorBody", _resolve({"$ref": "#/components/schemas/ErrorBody"}))]
    paths = openapi()["paths"]
    return [
        (f"POST {r}", paths[r]["post"]["responses"]["200"]["content"]["application/json"]["schema"])
        for r in routes
    ]


def shape_errors(example: Any, schema: dict[str, Any], where: str) -> list[str]:
    """Fields ``schema`` requires that ``example`` lacks, and fields it shows that ``schema``
    does not have, in ``example`` and the objects inside it."""
    schema = _resolve(schema)
    errors = []
    if isinstance(example, dict) and "properties" in schema:
        known = schema["properties"]
        missing = [k for k in schema.get("required", ()) if k not in example]
        unknown = [k for k in example if k not in known]
        errors += [f"{where}: lacks {k!r}, which the answer always has" for k in missing]
        errors += [f"{where}: shows {k!r}, which the answer never has" for k in unknown]
        for k, value in example.items():
            if k in known:
                errors += shape_errors(value, known[k], f"{where}.{k}")
    elif isinstance(example, list) and "items" in schema:
        for i, item in enumerate(example):
            errors += shape_errors(item, schema["items"], f"{where}[{i}]")
    return errors


def _with_placeholders_as_json(text: str) -> str:
    """``[...]`` -> ``[]`` and a bare ``...`` value -> ``"..."``."""
    text = re.sub(r"\[\s*\.\.\.\s*\]", "[]", text)
    return re.sub(r"(:\s*)\.\.\.(?=\s*[,}\]])", r'\1"..."', text)


def answer_examples(text: str) -> tuple[list[tuple[str, Any]], list[str]]:
    """Every JSON object in ``text`` whose top-level keys include an answer's key, as
    (key, object); and the lines where an answer's key appears outside any of them (an
    example that is not JSON, so nothing could check it)."""
    text = _with_placeholders_as_json(text)
    decoder = json.JSONDecoder()
    found, spans = [], []
    i = text.find("{")
    while i != -1:
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            end = i + 1
        else:
            key = next((k for k in ANSWER_KEYS if isinstance(value, dict) and k in value), None)
            if key is not None:
                found.append((key, value))
                spans.append((i, end))
            else:
                end = i + 1  # maybe an answer inside, e.g. a request and its answer
        i = text.find("{", end)
    keys = "|".join(ANSWER_KEYS)
    loose = [
        text[text.rfind("\n", 0, m.start()) + 1 : text.find("\n", m.start())].strip()
        for m in re.finditer(rf'"({keys})"\s*:', text)
        if not any(start <= m.start() < end for start, end in spans)
    ]
    return found, loose


@pytest.mark.parametrize("page", ANSWER_PAGES)
def test_answer_examples_have_the_fields_the_openapi_document_gives(page: str) -> None:
    examples, loose = answer_examples((ROOT / page).read_text())
    assert not loose, f"{page}: an answer example that is not JSON (write [...] or ...): {loose}"
    if page in MUST_SHOW_A_PREDICTION:
        assert any(key == "probabilities" for key, _ in examples), f"{page}: no prediction shown"
    errors = [
        error
        for key, example in examples
        for where, schema in answer_schema(key)
        for error in shape_errors(example, schema, f"{page}: {where} answer")
    ]
    assert not errors, "\n".join(errors)


def test_the_checker_sees_a_missing_and_an_unknown_field() -> None:
    """The check above, on an example known to be wrong both ways."""
    examples, loose = answer_examples(
        'curl ...\n# {"digit": 7, "probabilities": [...], "model_version": "...", "score": 1}'
    )
    assert not loose and [key for key, _ in examples] == ["probabilities"]
    (where, schema), _ = answer_schema("probabilities")
    errors = shape_errors(examples[0][1], schema, where)
    assert any("lacks 'request_id'" in e for e in errors)
    assert any("shows 'score'" in e for e in errors)
    assert answer_examples('A prediction is `{"digit": 7, "probabilities": [ten numbers]}`')[1]


if __name__ == "__main__":
    for page in rewrite_blocks():
        print(f"rewrote {page}")
