"""mnist-mlops: a production-minded MNIST training-and-serving pipeline.

Rooms, in data-flow order (``docs/architecture.md`` draws the arrows):
``core`` (shared basics) -> ``data`` -> ``prepare`` -> ``train`` -> ``evaluation`` ->
``export`` -> ``tracking`` -> ``packaging``; the serving side is ``imaging`` and
``inference``, which import only ``core`` and nothing that needs torch.
"""

__version__ = "0.1.0"
