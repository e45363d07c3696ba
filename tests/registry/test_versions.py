"""Registered versions: found by run and model hash, and fit to serve only with a card
(``export/model.json`` in its run, the int8 one when int8 serves) matching its tags."""

from __future__ import annotations

import pytest

from mnist_mlops.export.register import register_onnx
from mnist_mlops.registry.versions import (
    VersionError,
    registered_version,
    served_card,
    tag_version,
)

pytestmark = pytest.mark.slow  # logs real MLflow models


def test_registered_version_is_found_by_run_and_model_hash(store, name):
    run = store.run()
    version = register_onnx(store.onnx, store.uri, run, name, 0.98, {"sha256": "a" * 64}).version
    assert registered_version(store.uri, name, run, "a" * 64) == version
    assert registered_version(store.uri, name, run, "b" * 64) is None  # another model file
    assert registered_version(store.uri, name, store.run(), "a" * 64) is None  # another run


def test_a_version_with_its_card_is_fit_to_serve(store, name):
    version = store.register(name, 0.98)
    mv = store.client.get_model_version(name, version)
    card = served_card(store.client, name, mv)
    assert card.sha256 == mv.tags["sha256"] and card.test_accuracy == 0.98


def test_a_version_without_a_card_or_hash_is_not(store, name):
    bare = store.client.get_model_version(name, store.register(name, 0.98, card=False))
    with pytest.raises(VersionError, match=r"v1 has no card \(export/model.json is not in run"):
        served_card(store.client, name, bare)
    unhashed = store.register(name, 0.9)  # with its card; registered before the tag existed:
    store.client.delete_model_version_tag(name, unhashed, "sha256")
    with pytest.raises(VersionError, match="v2 has no sha256 tag; re-run the export stage"):
        served_card(store.client, name, store.client.get_model_version(name, unhashed))


def test_a_card_for_another_file_or_a_missing_int8_card_is_refused(store, name):
    version = store.register(name, 0.98)
    tag_version(store.uri, name, version, {"sha256": "f" * 64})
    with pytest.raises(VersionError, match=r"its card's SHA-256 .* is not its tag's ffffffffffff"):
        served_card(store.client, name, store.client.get_model_version(name, version))
    other = store.register(name, 0.98)
    int8 = {"served_precision": "int8", "int8_artifact": "export/int8/model.int8.onnx"}
    tag_version(store.uri, name, other, int8)
    with pytest.raises(VersionError, match=r"has no card \(export/int8/model.int8.json"):
        served_card(store.client, name, store.client.get_model_version(name, other))
