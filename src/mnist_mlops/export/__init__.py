"""Checkpoint -> ONNX, with a parity check of the exported graph against PyTorch."""
