"""Data: IDX files, fetching from mirrors, normalisation stats and splits, batching."""
