"""Running the exported model: the ONNX Runtime session and the model card beside it.

Torch-free (numpy and ONNX Runtime): the BentoML app in ``serving/``, bulk scoring and the
field sets all score through here, so they score exactly what is served.
"""
