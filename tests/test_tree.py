"""The layout of tests/ is what the docs say it is, and it mirrors the code.

docs/testing.md and docs/architecture.md each carry a table of the folders under tests/; a
folder added, renamed or removed without its row (or a row left for a folder that is gone)
fails here, so the pages cannot drift from the tree. A folder is named for what it tests:
a room of src/mnist_mlops, a folder of the repository (the app, the stage scripts, the
benchmarks), or one of the few subjects that belong to no single room.
"""

from __future__ import annotations

import re

import pytest

from support import ROOT

TESTS = ROOT / "tests"
PAGES = ("docs/testing.md", "docs/architecture.md")
# Subjects that span rooms: the trained model's behaviour, the whole loop, and the helpers.
OWN_SUBJECTS = {"model", "loop", "support"}
ROW = re.compile(r"^\| `tests/([^`/]+)/` \|", re.MULTILINE)


def folders() -> set[str]:
    """The folders directly under tests/, caches and hidden folders aside."""
    return {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}


def table_rows(page: str) -> list[str]:
    return ROW.findall((ROOT / page).read_text())


@pytest.mark.parametrize("page", PAGES)
def test_the_page_lists_every_test_folder_once_and_no_other(page: str):
    rows = table_rows(page)
    assert len(rows) == len(set(rows)), f"{page}: a folder has two rows: {sorted(rows)}"
    missing, stale = folders() - set(rows), set(rows) - folders()
    assert not missing, f"{page}: add a row '| `tests/<name>/` | what it tests |' for {missing}"
    assert not stale, f"{page}: rows for folders that do not exist: {stale}"


def test_every_test_folder_is_named_for_what_it_tests():
    rooms = {p.name for p in (ROOT / "src" / "mnist_mlops").iterdir() if p.is_dir()}
    top = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
    unnamed = folders() - rooms - top - OWN_SUBJECTS
    assert not unnamed, (
        f"tests/{unnamed}: name a test folder after the room of src/mnist_mlops (or the "
        "repository folder) whose code it tests"
    )


def test_the_fixture_table_names_where_each_fixture_is_defined():
    """docs/testing.md's "built once" table: each fixture is defined in the conftest.py it
    names, and the support module it names exists."""
    text = (ROOT / "docs/testing.md").read_text()
    section = text.split("## Expensive things are built once", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows, "no fixture rows found"
    for row in rows:
        names_cell, where_cell = row.split(" | ")[:2]
        conftest, *built_by = re.findall(r"`([^`]+\.py)`", where_cell)
        source = (ROOT / conftest).read_text()
        for name in re.findall(r"`(\w+)`", names_cell):
            assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{name} not in {conftest}"
        for path in built_by:
            assert (ROOT / path).is_file(), f"{path} (named for {names_cell}) does not exist"
