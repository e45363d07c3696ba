"""Checkpoint -> ONNX, with a parity check of the exported graph against PyTorch
(:mod:`.to_onnx`), and the export stage that also writes the card and registers the model
(:mod:`.stage`)."""
