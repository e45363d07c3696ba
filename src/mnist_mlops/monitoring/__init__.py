"""What the service saw and what users said: torch-free, shipped with the service.

:mod:`.features` turns one model input (the 28x28 MNIST-style array) into a few numbers a
drift report can compare with the pipeline's reference, so the service and the offline
reference compute them with the same code.
"""
