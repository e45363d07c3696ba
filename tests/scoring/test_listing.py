"""Which files of a folder the scoring command scores, and in which order: every regular
file at any depth, sorted by relative path, links to files included, links to folders not
followed (a link back up would list the tree forever)."""

from __future__ import annotations

import os
from pathlib import Path

from mnist_mlops.scoring.sources import ImageFolder, list_files


def test_files_at_every_depth_sorted_links_to_folders_not_followed(tmp_path: Path) -> None:
    for rel in ("b.png", "a/z.png", "a/b/c.jpg", "a.png", "a/b/a.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    os.symlink(tmp_path / "a.png", tmp_path / "link.png")
    os.symlink(tmp_path / "a", tmp_path / "a/loop")
    os.symlink(tmp_path / "missing.png", tmp_path / "broken.png")
    (tmp_path / "empty").mkdir()

    assert list_files(tmp_path) == (
        "a.png",
        "a/b/a.png",
        "a/b/c.jpg",
        "a/z.png",
        "b.png",
        "link.png",
    )


def test_the_fingerprint_changes_with_a_file_and_not_without(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/1.png").write_bytes(b"one")
    first = ImageFolder(str(tmp_path), list_files(tmp_path)).fingerprint()
    assert ImageFolder(str(tmp_path), list_files(tmp_path)).fingerprint() == first
    (tmp_path / "d/1.png").write_bytes(b"one, changed")
    assert ImageFolder(str(tmp_path), list_files(tmp_path)).fingerprint() != first
