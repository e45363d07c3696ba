"""Running the exported model: the ONNX Runtime session, the model card beside it, and the
one check of ``.npy`` pixel arrays (:mod:`.arrays`).

Torch-free (numpy and ONNX Runtime): the BentoML app in ``serving/``, bulk scoring and the
field sets all score through here, so they score exactly what is served, and accept the
same arrays.
"""
