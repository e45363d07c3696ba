"""Package stage: import the champion into the BentoML model store and build the Bento.

    python -m pipeline.package models/champion/served.json bentos/mnist_classifier.bento
    python -m pipeline.package models/model.onnx bentos/mnist_classifier.bento  # a file, explicitly

Given the champion stage's ``served.json`` it packages the artifact the registry's champion
serves (hash-checked) with its smoke set, named by its registry version; given an
``.onnx``, that file. After a refused retrain the champion, and so the Bento, is unchanged.
The exported ``.bento`` archive is the stage's output (``bentoml import`` it elsewhere, or
``bentoml containerize`` it where Docker runs).
"""

import argparse
import logging

from mnist_mlops.core.cli import run_stage
from mnist_mlops.packaging.bento import build_bento, import_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="models/champion/served.json (the champion) or an .onnx")
    parser.add_argument("bento_out")
    parser.add_argument("--bentofile", default="bentofile.yaml")
    args = parser.parse_args()
    tag = import_model(args.model)
    bento = build_bento(args.bentofile, tag, args.bento_out)
    logging.getLogger(__name__).info("built %s with model %s -> %s", bento, tag, args.bento_out)


if __name__ == "__main__":
    run_stage(main)
