"""The MLP: shapes, dtypes, normalisation inside, options from the config."""

import math
import typing

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from mnist_mlops.core.config import Activation, Init, Optimizer, TrainConfig
from mnist_mlops.data.splits import load_splits
from mnist_mlops.train.augment import random_affine, random_shift, random_stroke
from mnist_mlops.train.datamodule import MNISTDataModule, TensorBatches
from mnist_mlops.train.module import LitMLP
from mnist_mlops.train.network import MLP, count_parameters
from mnist_mlops.train.optim import OPTIMIZERS
from mnist_mlops.train.trainer import build_trainer


@pytest.mark.parametrize("shape", [(5, 28, 28), (5, 784)])
def test_forward_shapes_accept_both_layouts(shape):
    out = MLP(hidden=(16,))(torch.zeros(shape, dtype=torch.uint8))
    assert out.shape == (5, 10) and out.dtype == torch.float32


def test_parameter_count():
    # 784*256+256 + 256*128+128 + 128*10+10
    assert count_parameters(MLP(hidden=(256, 128))) == 235_146


def test_normalisation_is_inside_the_model():
    net = MLP(hidden=(8,), mean=0.5, std=0.25)
    x = torch.full((1, 784), 255.0)
    assert torch.allclose(net.normalise(x), torch.full((1, 784), 2.0))


# Each configurable activation, as torch's own module class (not the functional the layer
# calls), and the gain its weight initialisation uses: He (kaiming) for the ReLU family,
# Xavier (Glorot) with the gain torch recommends for tanh and sigmoid.
REFERENCE_ACTIVATIONS = {
    "relu": (torch.nn.ReLU(), math.sqrt(2.0)),
    "leaky_relu": (torch.nn.LeakyReLU(0.01), math.sqrt(2.0 / (1 + 0.01**2))),
    "gelu": (torch.nn.GELU(), math.sqrt(2.0)),
    "tanh": (torch.nn.Tanh(), 5.0 / 3.0),
    "sigmoid": (torch.nn.Sigmoid(), 1.0),
}


def test_every_configurable_activation_has_a_reference():
    assert set(REFERENCE_ACTIVATIONS) == set(typing.get_args(Activation))


def _expected_weight_std(init: str, activation: str, fan_in: int, fan_out: int) -> float:
    """The spread each init formula gives a layer's weights."""
    _, gain = REFERENCE_ACTIVATIONS[activation]
    if init == "he":  # kaiming_normal_: N(0, gain^2 / fan_in), relu gain for the non-leaky
        return (gain if activation == "leaky_relu" else math.sqrt(2.0)) / math.sqrt(fan_in)
    if init == "xavier":  # xavier_uniform_: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))
        xavier_gain = gain if activation in ("tanh", "sigmoid") else math.sqrt(2.0)
        return xavier_gain * math.sqrt(2.0 / (fan_in + fan_out))
    return 1.0 / math.sqrt(3.0 * fan_in)  # torch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))


@pytest.mark.parametrize("activation", typing.get_args(Activation))
@pytest.mark.parametrize("init", typing.get_args(Init))
def test_init_gives_each_layer_the_spread_of_its_formula(activation, init):
    torch.manual_seed(0)
    net = MLP((512, 256), activation, init=init)
    linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(512, 784), (256, 512), (10, 256)]
    for layer in linears:
        fan_out, fan_in = layer.weight.shape
        weights = layer.weight.detach()
        expected = _expected_weight_std(init, activation, fan_in, fan_out)
        # 2,560 to 401,408 draws per layer: the sample std is within a few % of the formula.
        assert weights.std().item() == pytest.approx(expected, rel=0.06), (init, layer)
        assert abs(weights.mean().item()) < 0.1 * expected
        if init == "default":  # torch's own: uniform within 1/sqrt(fan_in), bias too
            assert weights.abs().max().item() <= 1 / math.sqrt(fan_in)
            assert layer.bias.abs().max().item() <= 1 / math.sqrt(fan_in)
            assert layer.bias.abs().sum().item() > 0
        else:
            assert torch.count_nonzero(layer.bias) == 0
        if init == "xavier":  # uniform: nothing beyond sqrt(3) standard deviations
            assert weights.abs().max().item() <= math.sqrt(3.0) * expected * 1.0001
        if init == "he":  # normal: some draws beyond 3 standard deviations, unlike a uniform
            assert (weights.abs() > 3 * expected).any()


@pytest.mark.parametrize("activation", typing.get_args(Activation))
def test_forward_applies_the_configured_activation_batch_norm_and_dropout(activation):
    torch.manual_seed(0)
    net = MLP((32,), activation, dropout=0.5, batch_norm=True, mean=0.2, std=0.3)
    first, last = (m for m in net.layers if isinstance(m, torch.nn.Linear))
    (norm,) = (m for m in net.layers if isinstance(m, torch.nn.BatchNorm1d))
    assert first.bias is None  # batch norm's shift makes the linear bias redundant
    with torch.no_grad():  # non-trivial batch-norm statistics and affine parameters
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    pixels = torch.rand(6, 28, 28) * 255
    x = (pixels.reshape(6, 784) / 255 - 0.2) / 0.3
    h = x @ first.weight.T
    h = (h - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps) * norm.weight + norm.bias
    reference, _ = REFERENCE_ACTIVATIONS[activation]
    expected = reference(h) @ last.weight.T + last.bias
    net.eval()  # dropout off, batch norm on its running statistics
    with torch.no_grad():
        torch.testing.assert_close(net(pixels), expected, rtol=1e-4, atol=1e-4)
        net.train()  # dropout on: two passes drop different units
        assert not torch.allclose(net(pixels), net(pixels))


def test_random_shift_moves_ink_and_keeps_mass():
    x = torch.zeros(64, 28, 28)
    x[:, 12:16, 12:16] = 1.0
    shifted = random_shift(x, 3)
    assert shifted.shape == x.shape
    assert torch.all(shifted.sum((1, 2)) == 16)  # a 3-px shift of a central block loses nothing
    assert (shifted != x).any()


# Per config name: the exact torch class and the hyper-parameters it must be built with.
# lr/momentum/weight_decay below differ from every torch default, so a branch that
# ignored the config (or built another optimizer) fails.
EXPECTED_OPTIMIZERS = {
    "sgd": (torch.optim.SGD, {"momentum": 0, "nesterov": False}),
    "sgd_momentum": (torch.optim.SGD, {"momentum": 0.77, "nesterov": True}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "rmsprop": (torch.optim.RMSprop, {"momentum": 0.77}),
}


def test_every_configurable_optimizer_is_built_and_tested():
    assert set(OPTIMIZERS) == set(typing.get_args(Optimizer)) == set(EXPECTED_OPTIMIZERS)


@pytest.mark.parametrize("optimizer", typing.get_args(Optimizer))
def test_optimizers_configure(optimizer, repo_params):
    cfg = TrainConfig.from_params(
        repo_params,
        optimizer=optimizer,
        hidden=(16,),
        lr=0.0123,
        momentum=0.77,
        weight_decay=0.0042,
        schedule="none",
    )
    opt = LitMLP(cfg, 0.13, 0.31).configure_optimizers()
    cls, hyper = EXPECTED_OPTIMIZERS[optimizer]
    assert type(opt) is cls  # not isinstance: AdamW subclasses Adam
    group = opt.param_groups[0]
    assert group["lr"] == 0.0123 and group["weight_decay"] == 0.0042
    assert {k: group[k] for k in hyper} == hyper


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


AUGMENT_OFF = dict(
    augment_shift=0, augment_degrees=0.0, augment_scale=0.0,
    augment_elastic=0.0, augment_stroke=0.0, augment_blur=0.0,
)  # fmt: skip


def test_augment_is_off_at_zero_and_changes_every_image_when_on(repo_params):
    x = bars()
    off = TrainConfig.from_params(repo_params, hidden=(8,), **AUGMENT_OFF)
    assert torch.equal(LitMLP(off, 0.13, 0.31).augment(x), x)
    cfg = off.replace(
        augment_shift=2, augment_degrees=10, augment_scale=0.1,
        augment_elastic=1.0, augment_stroke=0.7, augment_blur=0.5,
    )  # fmt: skip
    torch.manual_seed(0)
    out = LitMLP(cfg, 0.13, 0.31).augment(x).float()
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


class _RecordLR(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


# schedule "none" (a bare optimizer, constant LR) is checked by test_optimizers_configure.
@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_schedule_sets_the_learning_rate_of_every_step(schedule, repo_params, processed_dir):
    """A real (tiny) fit: the LR each step trains with follows the configured schedule."""
    cfg = TrainConfig.from_params(
        repo_params,
        hidden=(8,),
        schedule=schedule,
        lr=0.01,
        batch_size=50,
        max_epochs=2,
        accelerator="cpu",
        devices="1",
    )
    splits, stats = load_splits(processed_dir)
    record = _RecordLR()
    trainer = build_trainer(cfg, False, [record], enable_checkpointing=False, limit_val_batches=0)
    dm = MNISTDataModule(batch_size=cfg.batch_size, seed=cfg.seed, splits=splits)
    trainer.fit(LitMLP(cfg, stats["mean"], stats["std"]), datamodule=dm)
    lrs, total = record.lrs, 2 * math.ceil(len(splits.y_train) / 50)
    assert len(lrs) == total
    if schedule == "cosine":  # from lr down to lr/100 along half a cosine
        eta_min = cfg.lr * 1e-2
        expected = [
            eta_min + (cfg.lr - eta_min) * (1 + math.cos(math.pi * t / total)) / 2
            for t in range(total)
        ]
        assert lrs == pytest.approx(expected, rel=1e-6)
    else:  # onecycle: warms up to lr, then anneals far below the start
        peak = max(range(total), key=lrs.__getitem__)
        assert lrs[peak] == pytest.approx(cfg.lr, rel=0.05)
        assert 0 < peak < total - 1 and lrs[0] < cfg.lr / 10 and lrs[-1] < lrs[0]
