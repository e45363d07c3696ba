"""Put the exported model into the BentoML model store and build the serving Bento.

The store entry is versioned by the model's SHA-256 (``mnist-mlp:<first 12 hex>``),
so importing the same export twice is a no-op and a Bento always names the exact
model inside it. The service loads the model from the store (see
:func:`resolve_model_path`) and checks its SHA-256 against ``model.json`` at startup.
Needs only bentoml: no torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from mnist_mlops.core.fileio import atomic_path
from mnist_mlops.inference.model_card import (
    CARD_NAME,
    MODEL_FILE,
    MODEL_TAG_ENV,
    STORE_NAME,
    ModelCard,
    card_path,
)

log = logging.getLogger(__name__)


def import_model(onnx_path: str | os.PathLike[str], name: str = STORE_NAME) -> str:
    """Copy ``model.onnx`` + ``model.json`` into the BentoML model store; return the tag."""
    import bentoml
    from bentoml.exceptions import NotFound

    onnx_path = Path(onnx_path)
    card = ModelCard.read_beside(onnx_path)
    card.verify(onnx_path)
    tag = f"{name}:{card.version}"
    try:
        existing = bentoml.models.get(tag)
        log.info("model store already holds %s at %s", tag, existing.path)
        return str(existing.tag)
    except NotFound:
        pass
    labels = {"format": card.format, "sha256": card.version}
    metadata = {
        "sha256": card.sha256,
        "version": card.version,
        "test_accuracy": card.test_accuracy,
    }
    with bentoml.models.create(
        tag, labels=labels, metadata=metadata, module="mnist_mlops"
    ) as model:
        shutil.copyfile(onnx_path, model.path_of(MODEL_FILE))
        shutil.copyfile(card_path(onnx_path), model.path_of(CARD_NAME))
    log.info("imported %s into the BentoML model store", tag)
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
