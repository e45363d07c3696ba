"""Serving side: what a Bento or the serving image needs (numpy, Pillow, ONNX Runtime).

Nothing here imports torch, Lightning, MLflow or the training side: the Bento ships this
folder and the pipeline's `package` stage depends on it as a whole.
"""
