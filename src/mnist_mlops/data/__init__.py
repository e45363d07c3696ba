"""Where digits come from: MNIST's IDX files (fetched from mirrors, checksummed), the
train/val/test splits and their pixel stats, the prepare stage's file, and bundled fonts.

numpy only (no torch): the field stage and bulk scoring read splits without training code.
"""
