"""Thin command-line stages run by `dvc repro` (see dvc.yaml)."""
