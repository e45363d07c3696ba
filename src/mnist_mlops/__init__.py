"""mnist-mlops: a small, production-minded MNIST training-and-serving pipeline.

The package is split so that serving imports nothing heavy: ``imaging`` and
``errors`` need only numpy and Pillow; everything touching torch lives in the
training modules and is imported only by the pipeline stages.
"""

__version__ = "0.1.0"
