"""A Lightning DataModule whose batches are slices of device-resident tensors.

MNIST fits in GPU memory many times over (60k x 784 bytes = 47 MB as uint8),
so the whole split is copied to the training device once and each batch is an
index gather: no per-item ``Dataset.__getitem__``, no worker processes, no
host-to-device copy per step. On CPU the same path is used (it is also the
fastest there). Under DDP each process takes a disjoint, equally sized shard
of each epoch's permutation, like ``DistributedSampler``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import pytorch_lightning as pl
import torch

from mnist_mlops.data.splits import Splits, load_splits, pixel_stats


class TensorBatches:
    """Iterate over (x, y) batches of tensors already on their device.

    ``shuffle`` draws a fresh permutation each epoch from a generator seeded
    with ``seed + epoch``, so runs are reproducible and resumable.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0
        self.per_rank = math.ceil(len(x) / world_size)

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)

    def _indices(self) -> torch.Tensor:
        n = len(self.x)
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        if self.world_size > 1:  # pad by wrapping so every rank gets the same count
            order = torch.cat([order, order[: self.per_rank * self.world_size - n]])
            order = order[self.rank :: self.world_size]
        return order.to(self.x.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._indices()
        self.epoch += 1
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


class MNISTDataModule(pl.LightningDataModule):
    """Serves the split stage's splits as device-resident uint8 batches.

    The splits are loaded (and validated) when the module is built, so a bad file fails
    before a tracked run or a Trainer exists, and ``mean``/``std`` are there to build the
    model with, whichever way the module was given its data.
    """

    def __init__(
        self,
        processed_dir: str | os.PathLike[str] | None = None,
        *,
        batch_size: int,
        seed: int,
        eval_batch_size: int = 10_000,
        splits: Splits | None = None,
        extra_train: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Give the split stage's folder (``processed_dir``) or ``splits`` already in memory.

        ``extra_train``: more (images, labels) for the train split only (prepare stage).
        """
        super().__init__()
        if splits is None:
            if processed_dir is None:
                raise ValueError("give processed_dir or splits")
            splits, stats = load_splits(processed_dir)
            mean, std = stats["mean"], stats["std"]
        else:  # the same numbers the split stage writes to stats.json
            mean, std = pixel_stats(splits.x_train)
        self.splits: Splits = splits
        self.mean, self.std = float(mean), float(std)
        self.batch_size, self.seed = batch_size, seed
        self.eval_batch_size = eval_batch_size
        self.extra_train = extra_train
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split as (uint8 images, int64 labels) on the training device, copied once."""
        device = self._device()
        cached = self._tensors.get(split)
        if cached is None or cached[0].device != device:
            x, y = self.splits.split(split)
            if split == "train" and self.extra_train is not None:
                x = np.concatenate([x, self.extra_train[0]])
                y = np.concatenate([y, self.extra_train[1]])
            cached = (
                torch.from_numpy(np.ascontiguousarray(x)).to(device),
                torch.from_numpy(np.ascontiguousarray(y)).to(device),
            )
            self._tensors[split] = cached
        return cached

    def _loader(self, split: str, train: bool) -> TensorBatches:
        x, y = self.tensors(split)
        trainer = getattr(self, "trainer", None)
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        return TensorBatches(
            x,
            y,
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            seed=self.seed,
            rank=rank,
            world_size=world,
        )

    def transfer_batch_to_device(
        self, batch: object, device: torch.device, dataloader_idx: int
    ) -> object:
        """Batches are born on the device; skip Lightning's per-step walk over the batch."""
        return batch

    def train_dataloader(self) -> TensorBatches:  # noqa: D102
        return self._loader("train", train=True)

    def val_dataloader(self) -> TensorBatches:  # noqa: D102
        return self._loader("val", train=False)

    def test_dataloader(self) -> TensorBatches:  # noqa: D102
        return self._loader("test", train=False)
