"""The lock files (requirements/*.txt, written by `make lock`) agree with pyproject.toml.

What ships is what was tested: `make setup` installs requirements/all.txt, the image and
the Bento install requirements/serve.txt. These checks need no network: every dependency
pyproject.toml declares is pinned to a version it allows, nothing pyproject.toml dropped is
still pinned as a direct dependency, every pin carries hashes, and the serving lock uses
the same versions as the full one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "mnist-mlops"
FIX = "run `make lock` and commit requirements/"


@dataclass
class Pin:
    version: str
    hashes: int = 0
    direct: bool = False  # "# via mnist-mlops (pyproject.toml)"
    vias: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, list[Pin]]:
    """name -> its pins (a universal lock may pin one name twice, under different markers)."""
    pins: dict[str, list[Pin]] = {}
    current: Pin | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)", line):
            current = Pin(m[3])
            pins.setdefault(canonicalize_name(m[1]), []).append(current)
        elif current is not None and "--hash=sha256:" in line:
            current.hashes += 1
        elif current is not None and line.startswith("    #"):
            current.vias.append(line)
            current.direct |= f"{PROJECT} (pyproject.toml)" in line
        elif line and not line.startswith((" ", "#")):
            pytest.fail(f"{path.name}: unexpected line {line!r}; {FIX}")
    return pins


def declared(extras: set[str]) -> list[Requirement]:
    """pyproject.toml's base dependencies and those of ``extras`` (self-references expanded)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project["optional-dependencies"]
    out = [Requirement(r) for r in project["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in map(Requirement, optional[extra]):
            if canonicalize_name(req.name) == PROJECT:
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


LOCKS = {"all.txt": {"all"}, "serve.txt": {"serve"}}


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_lock_pins_every_declared_dependency_within_its_range(name):
    pins = read_lock(ROOT / "requirements" / name)
    for req in declared(LOCKS[name]):
        key = canonicalize_name(req.name)
        assert key in pins, f"{name} lacks {req.name} (pyproject.toml asks for {req}); {FIX}"
        for pin in pins[key]:
            assert req.specifier.contains(pin.version, prereleases=True), (
                f"{name} pins {req.name}=={pin.version}, pyproject.toml asks for {req}; {FIX}"
            )
            assert pin.direct, f"{name} does not list {req.name} as ours; {FIX}"


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_lock_has_no_dependency_pyproject_dropped(name):
    wanted = {canonicalize_name(r.name) for r in declared(LOCKS[name])}
    pins = read_lock(ROOT / "requirements" / name)
    stale = sorted(n for n, ps in pins.items() if n not in wanted and any(p.direct for p in ps))
    assert not stale, f"{name} still pins {stale} for pyproject.toml, which no longer asks; {FIX}"


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_pin_is_hashed(name):
    pins = read_lock(ROOT / "requirements" / name)
    unhashed = sorted(n for n, ps in pins.items() if any(p.hashes == 0 for p in ps))
    assert not unhashed, f"{name}: no --hash for {unhashed}; {FIX}"


def test_serving_lock_uses_the_tested_versions():
    """The image and Bento run the versions `make setup` installs and the tests run on."""
    full = read_lock(ROOT / "requirements" / "all.txt")
    serve = read_lock(ROOT / "requirements" / "serve.txt")
    for key, pins in serve.items():
        assert key in full, f"serve.txt pins {key}, all.txt does not; {FIX}"
        tested = {p.version for p in full[key]}
        for pin in pins:
            assert pin.version in tested, f"serve.txt {key}=={pin.version}, all.txt {tested}; {FIX}"


def test_torch_stays_at_the_release_served_from_disk():
    pins = read_lock(ROOT / "requirements" / "all.txt")
    assert [p.version for p in pins["torch"]] == ["2.14.1"]
    assert [p.version for p in pins["torchvision"]] == ["0.29.1"]
    assert "torch" not in read_lock(ROOT / "requirements" / "serve.txt")
