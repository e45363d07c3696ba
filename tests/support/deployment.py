"""A deployment folder (``models/champion/``) as the champion stage leaves it, made from a
gated export without a registry, for tests of what the image and the Bento ship."""

from __future__ import annotations

import shutil
from pathlib import Path

from mnist_mlops.inference.model_card import card_path
from mnist_mlops.inference.serving_choice import ServingChoice, resolve_artifact
from mnist_mlops.registry.deployment import SMOKE_NAME, smoke_set, write_smoke


def deployment_folder(choice: Path, folder: Path, processed: Path, version: str = "1") -> Path:
    """``folder`` holding the artifact ``choice`` (a served.json) names with its card, a
    served.json naming registry ``version``, and the smoke set from ``processed`` (a split
    stage's output: its test digits); the new served.json's path."""
    from mnist_mlops.data.splits import load_splits

    artifact = resolve_artifact(choice)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(artifact, folder / artifact.name)
    shutil.copy(card_path(artifact), card_path(folder / artifact.name))
    chosen = ServingChoice.read(choice)
    ServingChoice(chosen.artifact, chosen.precision, chosen.sha256, chosen.reason, version).write(
        folder
    )
    splits, _ = load_splits(processed)
    write_smoke(folder / SMOKE_NAME, *smoke_set(splits.x_test, splits.y_test))
    return folder / choice.name
