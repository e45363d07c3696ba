"""What both sides share: params, errors, atomic file I/O, file locks, the stage CLI runner.

Imports neither side (nor torch, MLflow or BentoML), so the serving image can ship it.
"""
