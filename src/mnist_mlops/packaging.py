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

from mnist_mlops.errors import UserError
from mnist_mlops.fileio import atomic_path, read_json, sha256_file

log = logging.getLogger(__name__)

MODEL_NAME = "mnist-mlp"
MODEL_FILES = ("model.onnx", "model.json")
MODEL_PATH_ENV = "MNIST_MODEL_PATH"
MODEL_TAG_ENV = "MNIST_MODEL_TAG"


def import_model(onnx_path: str | os.PathLike[str], name: str = MODEL_NAME) -> str:
    """Copy ``model.onnx`` + ``model.json`` into the BentoML model store; return the tag."""
    import bentoml
    from bentoml.exceptions import NotFound

    onnx_path = Path(onnx_path)
    meta_path = onnx_path.with_suffix(".json")
    meta = read_json(meta_path)
    digest = sha256_file(onnx_path)
    if meta.get("sha256") != digest:
        raise UserError(f"{onnx_path} does not match {meta_path} (SHA-256); rerun the export stage")
    tag = f"{name}:{digest[:12]}"
    try:
        existing = bentoml.models.get(tag)
        log.info("model store already holds %s at %s", tag, existing.path)
        return str(existing.tag)
    except NotFound:
        pass
    labels = {"format": "onnx", "sha256": digest[:12]}
    metadata = {
        k: meta[k] for k in ("sha256", "version", "test_accuracy", "mlflow_run_id") if k in meta
    }
    with bentoml.models.create(
        tag, labels=labels, metadata=metadata, module="mnist_mlops"
    ) as model:
        for src, dst in zip((onnx_path, meta_path), MODEL_FILES):
            shutil.copyfile(src, model.path_of(dst))
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


def resolve_model_path(default: str | os.PathLike[str] = "models/model.onnx") -> Path:
    """Where the service finds ``model.onnx`` (``model.json`` beside it).

    In order: ``MNIST_MODEL_PATH`` (tests, an explicit file); ``MNIST_MODEL_TAG``, set
    inside a built Bento to the exact model packaged with it; ``default`` when it exists
    (a checkout after ``dvc repro``); else the store's ``mnist-mlp:latest``.
    """
    explicit = os.environ.get(MODEL_PATH_ENV)
    if explicit:
        return Path(explicit)
    tag = os.environ.get(MODEL_TAG_ENV)
    if not tag:
        if Path(default).is_file():
            return Path(default)
        tag = f"{MODEL_NAME}:latest"
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return Path(bentoml.models.get(tag).path_of(MODEL_FILES[0]))
    except NotFound:
        raise UserError(
            f"model {tag} is not in the BentoML model store and {default} does not exist; "
            f"run `dvc repro` or set {MODEL_PATH_ENV}=path/to/model.onnx"
        ) from None
