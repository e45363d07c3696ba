"""Champion stage: the registry's champion as the folder everything serving builds from.

    python -m pipeline.champion models/champion

Resolves ``models:/<mlflow.registered_model>@champion`` in the registry
(``$MLFLOW_TRACKING_URI`` or ``mlflow.tracking_uri``), downloads the artifact the gate chose
for that version with its card, checks their SHA-256 against the registry's, and writes
them with ``served.json`` and the smoke set (MNIST test digits of every class, from
data/processed) into models/champion/, replaced as a whole. The gate (field stage) or a
person (``python -m pipeline.registry promote`` / ``rollback``) moves the alias outside
DVC, so the stage always runs; an unmoved champion leaves the folder's bytes as they were
and the package stage is not run again. Ends with one line: which version serves and why,
also written to metrics/champion.json (the results page shows it).
"""

import argparse
from pathlib import Path

from mnist_mlops.core.cli import run_stage
from mnist_mlops.core.config import MlflowConfig, load_params
from mnist_mlops.core.fileio import write_json
from mnist_mlops.data.splits import load_splits
from mnist_mlops.registry.deployment import materialise, served_line, smoke_set
from mnist_mlops.tracking.runs import resolve_tracking_uri

ALIAS = "champion"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the deployment folder, e.g. models/champion")
    parser.add_argument("--processed", type=Path, default=Path("data/processed"),
                        help="the split stage's output: the smoke set's digits")  # fmt: skip
    parser.add_argument("--record", type=Path, default=Path("metrics/champion.json"),
                        help="the served version and the line, for the results page")  # fmt: skip
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    cfg = MlflowConfig.from_params(load_params(args.params))
    uri = resolve_tracking_uri(cfg.tracking_uri)
    splits, _ = load_splits(args.processed)
    smoke = smoke_set(splits.x_test, splits.y_test)
    served = materialise(uri, f"models:/{cfg.registered_model}@{ALIAS}", args.folder, smoke)
    line = served_line(uri, served)
    record = {"model": served.model_name, "version": served.version, "alias": ALIAS,
              "precision": served.precision, "sha256": served.sha256, "line": line}  # fmt: skip
    write_json(args.record, record)
    print(line, flush=True)


if __name__ == "__main__":
    run_stage(main)
