"""A real sqlite registry per test module (a new store's schema takes seconds), each test
under its own registered model name, so its versions start at 1 and its history is its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.registry_store import Store, make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as env:
        env.chdir(folder)  # MLflow puts a logged model's artifacts beside the working directory
        yield make_store(folder)


@pytest.fixture
def name(request) -> str:
    """A registered model name of this test's own."""
    return f"digits-{request.node.name}"[:60]
