"""Put the served model into the BentoML model store and build the serving Bento.

What goes in is what the registry's champion serves: given ``models/champion/served.json``
(the ``champion`` stage's folder) the artifact it names (int8 or float32, its card's
SHA-256 checked against the choice) and the smoke set beside it; given an ``.onnx`` that
file, explicitly. In the store entry the model is always ``model.onnx`` with its card as
``model.json`` (and ``smoke.npz`` when there is one), so the service reads any entry the
same way; its labels and metadata name the registry version. The entry is versioned by the
artifact's SHA-256 (``mnist-mlp:<first 12 hex>``), so importing the same champion twice is
a no-op and a Bento always names the exact model inside it. The service loads the model
from the store (see ``serving.model_loading``) and checks its SHA-256 against the card at
startup. Needs only bentoml: no torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from mnist_mlops.core.fileio import atomic_path, sha256_file
from mnist_mlops.inference.model_card import (
    CARD_NAME,
    MODEL_FILE,
    MODEL_TAG_ENV,
    STORE_NAME,
    ModelCard,
    card_path,
)
from mnist_mlops.inference.serving_choice import ServingChoice, is_choice, resolve_artifact
from mnist_mlops.registry.deployment import SMOKE_NAME

log = logging.getLogger(__name__)


def import_model(model: str | os.PathLike[str], name: str = STORE_NAME) -> str:
    """Copy the model ``model`` stands for (a ``served.json``: the artifact it chose, and the
    smoke set beside it; or an ``.onnx``) and its card into the BentoML model store; the tag."""
    import bentoml
    from bentoml.exceptions import NotFound

    onnx_path = resolve_artifact(model)
    card = ModelCard.read_beside(onnx_path)
    card.verify(onnx_path)
    version = ServingChoice.read(model).version if is_choice(model) else None
    smoke = Path(model).with_name(SMOKE_NAME) if is_choice(model) else None
    smoke = smoke if smoke is not None and smoke.is_file() else None
    tag = f"{name}:{card.version}"
    metadata = {
        "sha256": card.sha256,
        "version": card.version,
        "precision": card.precision,
        "artifact": onnx_path.name,  # its name in the export, before it became MODEL_FILE
        "test_accuracy": card.test_accuracy,
        "registry_version": version or "none",  # the registered version it came from
        "smoke_sha256": sha256_file(smoke) if smoke else "none",  # the smoke set inside
    }
    try:
        existing = bentoml.models.get(tag)
        if dict(existing.info.metadata) == metadata:
            log.info("model store already holds %s at %s", tag, existing.path)
            return str(existing.tag)
        bentoml.models.delete(tag)  # the same file, from another version or smoke set
    except NotFound:
        pass
    labels = {"format": card.format, "sha256": card.version, "precision": card.precision,
              "registry_version": metadata["registry_version"]}  # fmt: skip
    with bentoml.models.create(
        tag, labels=labels, metadata=metadata, module="mnist_mlops"
    ) as entry:
        shutil.copyfile(onnx_path, entry.path_of(MODEL_FILE))
        shutil.copyfile(card_path(onnx_path), entry.path_of(CARD_NAME))
        if smoke is not None:
            shutil.copyfile(smoke, entry.path_of(SMOKE_NAME))
    log.info(
        "imported %s (%s, %s, registry version %s) into the BentoML model store",
        tag, onnx_path, card.precision, version or "none",
    )  # fmt: skip
    return tag


def build_bento(
    bentofile: str | os.PathLike[str], model_tag: str, out: str | os.PathLike[str]
) -> str:
    """Build the Bento from ``bentofile`` with exactly ``model_tag`` in it; export it to ``out``."""
    import bentoml
    import yaml
    from bentoml.exceptions import NotFound

    spec = yaml.safe_load(Path(bentofile).read_text(encoding="utf-8"))
    spec["models"] = [model_tag]  # this model, not whatever is "latest" at serve time
    spec["envs"] = [e for e in spec.get("envs") or [] if e.get("name") != MODEL_TAG_ENV]
    spec["envs"].append({"name": MODEL_TAG_ENV, "value": model_tag})
    build_ctx = Path(bentofile).resolve().parent
    pinned = build_ctx / ".bentofile.build.yaml"
    bento_tag = f"{spec['name']}:{model_tag.split(':', 1)[1]}"
    with contextlib.suppress(NotFound):  # a rerun (the code changed) rebuilds the same version
        bentoml.bentos.delete(bento_tag)
    try:
        pinned.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        bento = bentoml.bentos.build_bentofile(
            str(pinned),
            build_ctx=str(build_ctx),
            version=model_tag.split(":", 1)[1],
            labels={"model": model_tag},
        )
    finally:
        pinned.unlink(missing_ok=True)
    with atomic_path(out) as tmp:
        tmp.unlink()  # export_bento refuses to overwrite
        bentoml.bentos.export_bento(bento.tag, str(tmp))
    return str(bento.tag)
