"""Training side: model, training loop, evaluation, export, tracking, registry, packaging.

Imports torch, Lightning and MLflow; may use `mnist_mlops.serve` (the exported model's
contract and the serving path for field scoring), never the other way round.
"""
