"""Package stage: import the served model into the BentoML model store and build the Bento.

    python -m pipeline.package models/served.json bentos/mnist_classifier.bento
    python -m pipeline.package models/model.onnx bentos/mnist_classifier.bento  # float32

Given the gate's ``served.json`` it packages the artifact the gate chose (hash-checked);
given an ``.onnx``, that file. The exported ``.bento`` archive is the stage's output
(``bentoml import`` it elsewhere, or ``bentoml containerize`` it where Docker runs).
"""

import argparse
import logging

from mnist_mlops.core.cli import run_stage
from mnist_mlops.packaging.bento import build_bento, import_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="models/served.json (the gate's choice) or an .onnx")
    parser.add_argument("bento_out")
    parser.add_argument("--bentofile", default="bentofile.yaml")
    args = parser.parse_args()
    tag = import_model(args.model)
    bento = build_bento(args.bentofile, tag, args.bento_out)
    logging.getLogger(__name__).info("built %s with model %s -> %s", bento, tag, args.bento_out)


if __name__ == "__main__":
    run_stage(main)
