"""Training speed: time to 98% test accuracy and epoch time, three ways, in one run.

    PYTHONPATH=src python bench/train_speed.py data/processed
    PYTHONPATH=src python bench/train_speed.py data/processed --budget-s 120 --out /tmp/x.json
    PYTHONPATH=src python bench/train_speed.py data/processed --quick --out /tmp/x.json

Same model (``train`` section of params.yaml), same seed, same initial weights, after an
untimed warm-up:

  (a) plain PyTorch loop, torchvision-style Dataset (PIL image -> ToTensor ->
      Normalize per item) + DataLoader (worker processes, pinned memory on GPU);
  (b) plain PyTorch loop over the whole split as one device tensor, shuffled
      batches by index;
  (c) our Lightning training: LitMLP + MNISTDataModule + the Trainer
      that ``train`` builds (checkpointing and per-epoch validation included),
      with the device's speed profile (``FAST`` below; none on CPU).

On a GPU two more rows make the comparison fair both ways: (b-fast), the
plain tensor loop with (c)'s profile, and (c-same), Lightning with the
baselines' settings. Time-to-target counts everything from the start of a run
(data to the device, workers, Lightning setup) except the test evaluations
the benchmark adds after each epoch. Each run stops once the target is reached
(after ``--min-epochs``) or its time budget is spent, so the whole benchmark is
bounded. Prints a table and writes JSON; the ratios are what to compare across
machines, not the seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from common import accuracy_on_test, parse_sets  # bench/ is sys.path[0]
from pytorch_lightning.callbacks import Callback

from mnist_mlops.core.config import TrainConfig, load_params
from mnist_mlops.data.splits import Splits, load_splits
from mnist_mlops.train.datamodule import MNISTDataModule
from mnist_mlops.train.module import LitMLP
from mnist_mlops.train.network import MLP
from mnist_mlops.train.optim import make_optimizer, make_scheduler
from mnist_mlops.train.trainer import best_checkpoint, build_trainer

TARGET = 0.98
# (c)'s speed profile on a GPU: a GPU step of this MLP costs about the same at any
# batch size up to thousands (it is launch-bound), so fewer, larger steps with a
# matching learning rate reach the target sooner; no per-step determinism checks.
FAST: dict[str, dict[str, Any]] = {
    "cuda": {"batch_size": 2048, "lr": 0.008, "max_epochs": 10, "deterministic": False},
    "cpu": {},
}
# --quick: one epoch of a small net per run, every run and the JSON: proves it runs.
QUICK: dict[str, Any] = {"hidden": [32], "max_epochs": 1}


@dataclasses.dataclass
class Run:
    """One variant's measurements, epoch by epoch."""

    name: str
    description: str
    cfg: dict[str, Any]
    epochs: list[dict[str, float]] = dataclasses.field(default_factory=list)
    time_to_target_s: float | None = None
    note: str = ""
    quiet: bool = False  # warm-up runs print nothing

    @property
    def epoch_s(self) -> float:
        """Median epoch time, leaving out the first (warm-up) epoch when there are more."""
        times = [e["epoch_s"] for e in self.epochs]
        return statistics.median(times[1:] if len(times) > 1 else times) if times else math.nan


class Clock:
    """Wall time that the benchmark's own test evaluations are taken out of."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.started = self._now()
        self.paused_s = 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def elapsed(self) -> float:
        return self._now() - self.started - self.paused_s

    def pause(self, seconds: float) -> None:
        self.paused_s += seconds


def plain_loop(
    run: Run,
    cfg: TrainConfig,
    net: torch.nn.Module,
    batches: Callable[[], Iterable],
    n_batches: int,
    test: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
    clock: Clock,
    budget_s: float,
    min_epochs: int,
) -> None:
    """The textbook loop: forward, loss, backward, step; no host sync inside an epoch."""
    # The train stage's optimizer and schedule, so the loops differ only in how they run.
    opt = make_optimizer(
        cfg.optimizer,
        net.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )
    sched = make_scheduler(cfg.schedule, opt, lr=cfg.lr, total_steps=cfg.max_epochs * n_batches)
    net.train()
    for epoch in range(cfg.max_epochs):
        start = clock.elapsed()
        for x, y in batches():
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            loss = F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        if _end_epoch(
            run, epoch, start, clock, lambda: accuracy_on_test(net, *test), budget_s, min_epochs
        ):
            return


def _end_epoch(
    run: Run,
    epoch: int,
    start: float,
    clock: Clock,
    evaluate: Callable[[], float],
    budget_s: float,
    min_epochs: int,
) -> bool:
    """Record an epoch; True when the run should stop (target reached or budget spent)."""
    now = clock.elapsed()
    t0 = time.perf_counter()
    acc = evaluate()
    clock.pause(time.perf_counter() - t0)
    run.epochs.append({"epoch": epoch + 1, "epoch_s": now - start, "cum_s": now, "test_acc": acc})
    if not run.quiet:
        print(
            f"  {run.name:7s} epoch {epoch + 1:3d}  {now - start:7.3f} s  cum {now:8.2f} s  "
            f"test {acc:.4f}",
            flush=True,
        )
    if run.time_to_target_s is None and acc >= TARGET:
        run.time_to_target_s = now
    if now > budget_s:
        run.note = f"stopped at the {budget_s:.0f} s budget"
        return True
    return run.time_to_target_s is not None and epoch + 1 >= min_epochs


class TorchvisionStyle(torch.utils.data.Dataset):
    """What the torchvision MNIST dataset does per item: PIL image, then the transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: float, std: float) -> None:
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((mean,), (std,))]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i], mode="L")), int(self.labels[i])


def run_dataloader(
    cfg: TrainConfig,
    splits: Splits,
    stats: dict,
    device: torch.device,
    workers: int,
    budget_s: float,
    min_epochs: int,
) -> Run:
    """(a): per-item Dataset + DataLoader; the model's own normalisation is the identity here."""
    run = Run(
        "a",
        f"plain loop, torchvision-style Dataset + DataLoader ({workers} workers)",
        _cfg_dict(cfg),
    )
    torch.manual_seed(cfg.seed)
    # mean=0, std=1/255 makes the MLP's built-in normalise layer an identity, so the
    # Dataset's Normalize does the job and the weights are the same draws as (b), (c).
    net = MLP.from_config(cfg, 0.0, 1.0 / 255.0).to(device)
    clock = Clock(device)
    ds = TorchvisionStyle(splits.x_train, splits.y_train, stats["mean"], stats["std"])
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    x_test = (torch.from_numpy(splits.x_test).float() / 255 - stats["mean"]) / stats["std"]
    test = (x_test.to(device), torch.from_numpy(splits.y_test).to(device))
    plain_loop(
        run, cfg, net, lambda: loader, len(loader), test, device, clock, budget_s, min_epochs
    )
    return run


def run_tensors(
    name: str,
    cfg: TrainConfig,
    splits: Splits,
    stats: dict,
    device: torch.device,
    budget_s: float,
    min_epochs: int,
    log: bool = True,
) -> Run:
    """(b): whole split on the device as uint8, a fresh permutation each epoch, gather by index."""
    run = Run(
        name, "plain loop, device-resident tensors, batches by index", _cfg_dict(cfg), quiet=not log
    )
    torch.manual_seed(cfg.seed)
    net = MLP.from_config(cfg, stats["mean"], stats["std"]).to(device)
    clock = Clock(device)
    x = torch.from_numpy(splits.x_train).to(device)
    y = torch.from_numpy(splits.y_train).to(device)
    n, bs = len(y), cfg.batch_size
    gen = torch.Generator(device=device).manual_seed(cfg.seed)

    def batches() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(n, device=device, generator=gen)
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            yield x[idx], y[idx]

    test = (torch.from_numpy(splits.x_test).to(device), torch.from_numpy(splits.y_test).to(device))
    plain_loop(run, cfg, net, batches, math.ceil(n / bs), test, device, clock, budget_s, min_epochs)
    return run


class _Timing(Callback):
    """Times each epoch (validation included) and tests after it, off the clock."""

    def __init__(
        self,
        run: Run,
        clock: Clock,
        test: tuple[torch.Tensor, torch.Tensor],
        budget_s: float,
        min_epochs: int,
    ) -> None:
        self.run, self.clock, self.test = run, clock, test
        self.budget_s, self.min_epochs = budget_s, min_epochs
        self.start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = self.clock.elapsed()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        net = pl_module.net  # type: ignore[attr-defined]
        if _end_epoch(
            self.run,
            trainer.current_epoch,
            self.start,
            self.clock,
            lambda: accuracy_on_test(net, *self.test),
            self.budget_s,
            self.min_epochs,
        ):
            trainer.should_stop = True


def run_lightning(
    name: str,
    cfg: TrainConfig,
    splits: Splits,
    stats: dict,
    device: torch.device,
    budget_s: float,
    min_epochs: int,
) -> Run:
    """(c): what ``train`` runs, minus MLflow (it logs once per epoch, off the hot loop)."""
    run = Run(name, "our Lightning training (MNISTDataModule + LitMLP)", _cfg_dict(cfg))
    pl.seed_everything(cfg.seed, verbose=False)
    torch.manual_seed(cfg.seed)
    model = LitMLP(cfg, stats["mean"], stats["std"])
    clock = Clock(device)
    dm = MNISTDataModule(batch_size=cfg.batch_size, seed=cfg.seed, splits=splits)
    test = (torch.from_numpy(splits.x_test).to(device), torch.from_numpy(splits.y_test).to(device))
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as ckpt_dir:
        checkpoint = best_checkpoint(ckpt_dir)
        timing = _Timing(run, clock, test, budget_s, min_epochs)
        trainer = build_trainer(cfg, False, [checkpoint, timing], enable_progress_bar=False)
        trainer.fit(model, datamodule=dm)
    # Lightning switches this on globally; the runs after this one must not inherit it.
    torch.use_deterministic_algorithms(False)
    return run


def warm_up(cfgs: list[TrainConfig], splits: Splits, stats: dict, device: torch.device) -> None:
    """A few untimed steps of every code path, so no run pays for loading kernels used later.

    CUDA loads kernels lazily and cuBLAS picks algorithms per shape on first use;
    without this the first run of each kind would carry that cost for the others.
    """
    quiet = splits.__class__(
        *(
            a[:4096]
            for a in (
                splits.x_train,
                splits.y_train,
                splits.x_val,
                splits.y_val,
                splits.x_test,
                splits.y_test,
            )
        )
    )
    for cfg in cfgs:
        short = cfg.replace(max_epochs=1)
        run_tensors("warm", short, quiet, stats, device, budget_s=0.0, min_epochs=1, log=False)
        pl.seed_everything(cfg.seed, verbose=False)
        model = LitMLP(short, stats["mean"], stats["std"])
        dm = MNISTDataModule(batch_size=cfg.batch_size, seed=cfg.seed, splits=quiet)
        build_trainer(
            short,
            False,
            [],
            enable_progress_bar=False,
            enable_checkpointing=False,
            limit_train_batches=2,
            limit_val_batches=1,
        ).fit(model, datamodule=dm)
        torch.use_deterministic_algorithms(False)


def _cfg_dict(cfg: TrainConfig) -> dict[str, Any]:
    keys = (
        "hidden",
        "dropout",
        "optimizer",
        "lr",
        "schedule",
        "batch_size",
        "max_epochs",
        "precision",
        "deterministic",
        "seed",
    )
    return {k: getattr(cfg, k) for k in keys}


def _ratio(slow: float | None, fast: float | None) -> float | None:
    if slow is None or fast is None or fast <= 0 or math.isnan(slow) or math.isnan(fast):
        return None
    return round(slow / fast, 2)


def summarise(runs: dict[str, Run], device_name: str) -> dict[str, Any]:
    """Ratios of (c) against the baselines, and the issue's targets checked on them."""
    c = runs["c"]
    ratios = {
        f"{k}_over_c": {
            "time_to_target": _ratio(r.time_to_target_s, c.time_to_target_s),
            "epoch": _ratio(r.epoch_s, c.epoch_s),
        }
        for k, r in runs.items()
        if k != "c"
    }
    if "a_over_c" not in ratios or "b_over_c" not in ratios:
        return {"ratios": ratios, "targets": {}}
    if device_name == "cuda":
        targets = {
            "time_to_target_a_over_c>=8": (ratios["a_over_c"]["time_to_target"] or 0) >= 8,
            "time_to_target_b_over_c>1": (ratios["b_over_c"]["time_to_target"] or 0) > 1,
            "epoch_a_over_c>=10": (ratios["a_over_c"]["epoch"] or 0) >= 10,
        }
    else:
        targets = {
            "epoch_c_within_1.2x_of_b": (ratios["b_over_c"]["epoch"] or 0) >= 1 / 1.2,
            "time_to_target_c_within_1.2x_of_b": (ratios["b_over_c"]["time_to_target"] or 0)
            >= 1 / 1.2,
        }
    return {"ratios": ratios, "targets": targets}


def print_table(runs: dict[str, Run]) -> None:
    c = runs["c"]
    print(
        f"\n{'run':7s} {'time to 98% (s)':>16s} {'epoch (s)':>10s} {'best test':>10s} "
        f"{'x slower than c (t98 / epoch)':>31s}  description"
    )
    for name, r in runs.items():
        t98 = f"{r.time_to_target_s:.2f}" if r.time_to_target_s is not None else "not reached"
        best = max((e["test_acc"] for e in r.epochs), default=math.nan)
        rt, re_ = _ratio(r.time_to_target_s, c.time_to_target_s), _ratio(r.epoch_s, c.epoch_s)
        print(
            f"{name:7s} {t98:>16s} {r.epoch_s:10.3f} {best:10.4f} {str(rt):>15s} / "
            f"{str(re_):<13s}  {r.description}; batch {r.cfg['batch_size']}, lr {r.cfg['lr']}"
            + (f" [{r.note}]" if r.note else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("processed_dir", help="the split stage's output (mnist.npz)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--overlay", action="append", default=[], help="YAML of changed keys, e.g. params-best"
    )
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/...)")
    parser.add_argument("--budget-s", type=float, default=300.0, help="per run, wall seconds")
    parser.add_argument("--min-epochs", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader workers for (a); default 4 on GPU, 0 on CPU",
    )
    parser.add_argument("--only", default="", help="comma-separated subset of runs, e.g. b,c")
    parser.add_argument(
        "--fast",
        action="append",
        default=[],
        help="override (c)'s speed profile: KEY=VALUE (YAML value)",
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK}, one epoch a run")
    args = parser.parse_args()
    if args.quick:
        args.budget_s, args.min_epochs = 0.0, 1

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base = TrainConfig.from_params(
        load_params(args.params, *args.overlay),
        accelerator=device.type,
        devices="1",
        strategy="auto",
        num_nodes=1,
        **(QUICK if args.quick else {}),
    )
    overrides = parse_sets(args.fast)
    fast = base.replace(**{**FAST[device.type], **overrides})
    splits, stats = load_splits(args.processed_dir)
    workers = args.workers if args.workers is not None else (4 if device.type == "cuda" else 0)
    plan: dict[str, Callable[[], Run]] = {
        "a": lambda: run_dataloader(
            base, splits, stats, device, workers, args.budget_s, args.min_epochs
        ),
        "b": lambda: run_tensors("b", base, splits, stats, device, args.budget_s, args.min_epochs),
        "c": lambda: run_lightning(
            "c", fast, splits, stats, device, args.budget_s, args.min_epochs
        ),
    }
    if device.type == "cuda":
        plan["b-fast"] = lambda: run_tensors(
            "b-fast", fast, splits, stats, device, args.budget_s, args.min_epochs
        )
        plan["c-same"] = lambda: run_lightning(
            "c-same", base, splits, stats, device, args.budget_s, args.min_epochs
        )
    only = [s for s in args.only.split(",") if s]
    warm_up([base, fast], splits, stats, device)
    runs: dict[str, Run] = {}
    for name, fn in plan.items():
        if only and name not in only:
            continue
        print(f"run {name}", flush=True)
        runs[name] = fn()
    if "c" not in runs:
        return
    print_table(runs)
    result = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "python": sys.version.split()[0],
        "target_test_acc": TARGET,
        "runs": {k: {**dataclasses.asdict(r), "epoch_s": r.epoch_s} for k, r in runs.items()},
        **summarise(runs, device.type),
    }
    print(json.dumps(result["ratios"]), json.dumps(result["targets"]))
    out = Path(args.out or f"bench/results/train_speed-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
