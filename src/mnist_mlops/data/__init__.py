"""Data: IDX files, fetching from mirrors, train/val/test splits and their pixel stats, batches."""
