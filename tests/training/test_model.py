"""The MLP: shapes, dtypes, normalisation inside, options from the config."""

import pytest
import torch

from mnist_mlops.config import TrainConfig
from mnist_mlops.data.datamodule import TensorBatches
from mnist_mlops.model import (
    MLP,
    MNISTClassifier,
    count_parameters,
    random_affine,
    random_shift,
    random_stroke,
)


@pytest.mark.parametrize("shape", [(5, 28, 28), (5, 784)])
def test_forward_shapes_accept_both_layouts(shape):
    out = MLP()(torch.zeros(shape, dtype=torch.uint8))
    assert out.shape == (5, 10) and out.dtype == torch.float32


def test_default_parameter_count():
    # 784*256+256 + 256*128+128 + 128*10+10
    assert count_parameters(MLP()) == 235_146


def test_normalisation_is_inside_the_model():
    net = MLP(mean=0.5, std=0.25)
    x = torch.full((1, 784), 255.0)
    assert torch.allclose(net.normalise(x), torch.full((1, 784), 2.0))


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu", "tanh", "sigmoid"])
@pytest.mark.parametrize("init", ["default", "xavier", "he"])
def test_every_activation_and_init_builds(activation, init):
    net = MLP((32,), activation, dropout=0.2, batch_norm=True, init=init)
    assert net(torch.rand(4, 28, 28) * 255).shape == (4, 10)


def test_random_shift_moves_ink_and_keeps_mass():
    x = torch.zeros(64, 28, 28)
    x[:, 12:16, 12:16] = 1.0
    shifted = random_shift(x, 3)
    assert shifted.shape == x.shape
    assert torch.all(shifted.sum((1, 2)) == 16)  # a 3-px shift of a central block loses nothing
    assert (shifted != x).any()


@pytest.mark.parametrize("optimizer", ["sgd", "sgd_momentum", "adam", "adamw", "rmsprop"])
def test_optimizers_configure(optimizer):
    module = MNISTClassifier(TrainConfig(optimizer=optimizer, hidden=(16,)), 0.13, 0.31)
    opt = module.configure_optimizers()
    assert isinstance(opt, torch.optim.Optimizer)


def test_tensor_batches_cover_every_item_once_per_epoch():
    x = torch.arange(103)
    batches = TensorBatches(x, x, batch_size=10, shuffle=True, seed=1)
    assert len(batches) == 11
    epoch1 = torch.cat([b[0] for b in batches])
    epoch2 = torch.cat([b[0] for b in batches])
    assert sorted(epoch1.tolist()) == list(range(103))
    assert not torch.equal(epoch1, epoch2)  # fresh permutation each epoch


def test_tensor_batches_shard_disjointly_across_ranks():
    x = torch.arange(100)
    shards = [
        torch.cat([b[0] for b in TensorBatches(x, x, 16, True, 0, rank=r, world_size=2)])
        for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 50
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())


def test_config_rejects_unknown_and_bad_values():
    from mnist_mlops.config import from_mapping
    from mnist_mlops.errors import UserError

    with pytest.raises(UserError, match="unknown key.*train.lrr"):
        from_mapping(TrainConfig, {"lrr": 0.1}, "train")
    with pytest.raises(UserError, match="train.optimizer must be one of"):
        from_mapping(TrainConfig, {"optimizer": "lbfgs"}, "train")
    with pytest.raises(UserError, match="train.max_epochs must be a whole number"):
        from_mapping(TrainConfig, {"max_epochs": 2.5}, "train")
    assert from_mapping(TrainConfig, {"lr": "1e-2", "hidden": [8]}, "train").lr == 0.01


def test_random_affine_keeps_shape_and_is_identity_at_zero():
    x = torch.zeros(8, 28, 28)
    x[:, 10:18, 12:16] = 255.0
    assert torch.allclose(random_affine(x, 0.0, 0.0), x, atol=1e-3)
    moved = random_affine(x, 15.0, 0.1)
    assert moved.shape == (8, 28, 28) and moved.dtype == torch.float32
    assert not torch.allclose(moved, x, atol=1.0)


def bars(n: int = 16) -> torch.Tensor:
    """n copies of a 4 px wide vertical bar, like a drawn "1"."""
    x = torch.zeros(n, 28, 28, dtype=torch.uint8)
    x[:, 6:22, 12:16] = 255
    return x


def test_augment_is_off_by_default_and_changes_every_image_when_on():
    x = bars()
    assert torch.equal(MNISTClassifier(TrainConfig(hidden=(8,)), 0.13, 0.31).augment(x), x)
    cfg = TrainConfig(
        hidden=(8,), augment_shift=2, augment_degrees=10, augment_scale=0.1,
        augment_elastic=1.0, augment_stroke=0.7, augment_blur=0.5,
    )  # fmt: skip
    torch.manual_seed(0)
    out = MNISTClassifier(cfg, 0.13, 0.31).augment(x).float()
    assert out.shape == (16, 28, 28)
    change = (out - x.float()).abs().flatten(1).sum(1)
    assert (change > 255).all()  # every image moved or reshaped by at least a pixel's worth
    assert len({tuple(row.round().tolist()) for row in out.flatten(1)}) == 16  # each its own way


def test_random_stroke_thickens_some_thins_others_and_is_identity_at_zero():
    x = bars()
    assert torch.equal(random_stroke(x, 0.0, 0.0), x.float())
    torch.manual_seed(0)
    mass = random_stroke(x, 1.0, 0.0).sum((1, 2))
    base = x.float().sum((1, 2))
    assert (mass > 1.2 * base).any() and (mass < 0.8 * base).any()
    blurred = random_stroke(x, 0.0, 1.0)
    assert (blurred.sum((1, 2)) - base).abs().max() < 1.0  # a blur moves ink, keeps its mass
    assert (blurred.amax((1, 2)) <= 255.0).all() and (blurred != x.float()).any()


def test_elastic_distortion_bends_each_image_differently():
    x = bars(4).float()
    torch.manual_seed(0)
    bent = random_affine(x, 0.0, 0.0, elastic=1.5)
    assert not torch.allclose(bent, x, atol=1.0)
    assert not torch.allclose(bent[0], bent[1], atol=1.0)
