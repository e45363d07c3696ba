"""Typed, frozen configuration built from the sections of ``params.yaml``.

Stage CLIs read one section each and turn it into one of these dataclasses;
library functions take the dataclass (or plain arguments), never the file.
Unknown keys and bad values are rejected with a message that names the key, so
a typo in ``params.yaml`` or ``dvc exp run -S`` fails fast instead of being
silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mnist_mlops.errors import UserError

# The four canonical MNIST files and the SHA-256 of their *decompressed* bytes.
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Public mirrors, tried in order (the same ones torchvision uses).
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

ACTIVATIONS = ("relu", "leaky_relu", "gelu", "tanh", "sigmoid")
OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "onecycle", "cosine")
INITS = ("default", "xavier", "he")


@dataclass(frozen=True)
class DownloadConfig:
    mirrors: tuple[str, ...] = DEFAULT_MIRRORS
    # A URL or a local folder tried before the mirrors; env MNIST_MIRROR wins over it.
    mirror: str = ""
    # Expected SHA-256 of each decompressed IDX file; tests swap in synthetic data's.
    sha256: dict[str, str] = field(default_factory=lambda: dict(MNIST_SHA256))
    timeout_s: float = 30.0  # per connect/read: a stalled mirror is abandoned, not waited on
    retries: int = 1  # extra attempts per mirror for transient errors
    deadline_s: float = 600.0  # whole-file limit per attempt: a trickling mirror is skipped


@dataclass(frozen=True)
class NormaliseConfig:
    val_size: int = 5000
    seed: int = 42


@dataclass(frozen=True)
class TrainConfig:
    hidden: tuple[int, ...] = (256, 128)
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False
    init: str = "default"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # used by sgd_momentum and rmsprop
    weight_decay: float = 0.0
    schedule: str = "none"
    label_smoothing: float = 0.0
    augment_shift: int = 0  # max random shift in pixels; 0 turns augmentation off
    augment_degrees: float = 0.0  # max random rotation in degrees; 0 = off
    augment_scale: float = 0.0  # max random zoom, as a fraction (0.1 = 0.9x..1.1x); 0 = off
    augment_elastic: float = 0.0  # elastic distortion, about this many pixels; 0 = off
    augment_stroke: float = 0.0  # max fraction of a 3x3 dilate/erode mixed in (0..1); 0 = off
    augment_blur: float = 0.0  # max fraction of a 3x3 blur mixed in (0..1); 0 = off
    batch_size: int = 128
    max_epochs: int = 10
    seed: int = 42
    accelerator: str = "auto"  # "auto" picks the GPU when one is present
    devices: str = "auto"
    strategy: str = "auto"  # "ddp" spreads one run over devices x num_nodes processes
    num_nodes: int = 1
    log_every_n_steps: int = 50  # only how often Lightning checks; metrics are per epoch
    precision: str = "32-true"  # "bf16-mixed" pays off on recent GPUs
    deterministic: bool = True  # same seed on CPU -> identical metrics
    compile: bool = False  # torch.compile the MLP (pays off on GPU for long runs)

    def __post_init__(self) -> None:
        _check_choice("train.activation", self.activation, ACTIVATIONS)
        _check_choice("train.optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("train.schedule", self.schedule, SCHEDULES)
        _check_choice("train.init", self.init, INITS)
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise UserError(
                "train.hidden must be a non-empty list of positive sizes, e.g. [256, 128]"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"train.dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0 or self.batch_size <= 0 or self.max_epochs <= 0:
            raise UserError("train.lr, train.batch_size and train.max_epochs must be positive")


@dataclass(frozen=True)
class MlflowConfig:
    # sqlite is the default backend: the file store is deprecated in MLflow 3.
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "mnist-mlp"
    registered_model: str = "mnist-mlp"


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 18
    atol: float = 1e-4  # max |logit_onnx - logit_torch| allowed on the test set


@dataclass(frozen=True)
class FieldConfig:
    # Realistic sets built from the MNIST test split (see mnist_mlops.fieldsets).
    sets: tuple[str, ...] = ("photo", "marker", "pen", "canvas", "fonts")
    n_per_set: int = 300  # 300 images: about +-1 % on each accuracy
    seed: int = 7


T = TypeVar("T")


def _check_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Turn a YAML value into the annotated type, or raise a UserError naming the key."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return value
    if origin is tuple:
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise UserError(f"params: {key} must be a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1]
        return tuple(_coerce(key, v, item) for v in value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise UserError(f"params: {key} must be a mapping, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"params: {key} must be true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = hint(value)  # allow "1e-3" strings from `dvc exp run -S`
            except (TypeError, ValueError):
                raise UserError(f"params: {key} must be a number, got {value!r}") from None
        if hint is int and float(value) != int(value):
            raise UserError(f"params: {key} must be a whole number, got {value!r}")
        return hint(value)
    if hint is str:
        return "" if value is None else str(value)
    return value


def from_mapping(cls: type[T], section: Mapping[str, Any] | None, name: str) -> T:
    """Build dataclass ``cls`` from a params section, rejecting unknown keys."""
    section = dict(section or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(section) - fields)
    if unknown:
        raise UserError(
            f"params: unknown key(s) {', '.join(f'{name}.{k}' for k in unknown)}; "
            f"known keys are {', '.join(sorted(fields))}"
        )
    values = {k: _coerce(f"{name}.{k}", v, hints[k]) for k, v in section.items()}
    return cls(**values)


def load_params(path: str | os.PathLike[str] = "params.yaml") -> dict[str, Any]:
    """Read ``params.yaml`` into a dict, with a clear error if it is missing or malformed."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p}: not found; run from the repository root") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{p}: not valid YAML ({exc.__class__.__name__}); fix the syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{p}: expected a mapping of sections at the top level")
    return data


def section(params: Mapping[str, Any], cls: type[T], name: str) -> T:
    """Build the dataclass for one named section of the params."""
    return from_mapping(cls, params.get(name), name)
