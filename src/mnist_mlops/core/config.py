"""Typed, frozen configuration: one pydantic model per section of ``params.yaml``.

``params.yaml`` holds every value (DVC tracks it, ``dvc exp run -S`` overrides
it); the models here hold only types and constraints, so no default is written
twice. Stage CLIs build their section with ``Cls.from_params(load_params())``;
library functions take the model (or plain arguments), never the file. Unknown
keys, missing keys and bad values become one ``UserError`` line naming the key,
so a typo fails fast instead of being silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    StrictBool,
    ValidationError,
)

from mnist_mlops.core.errors import UserError

# The allowed values, each listed once; code that needs the list (train/network.py,
# data/prepared.py) reads it with typing.get_args.
Activation = Literal["relu", "leaky_relu", "gelu", "tanh", "sigmoid"]  # torch.nn.functional names
# The prepare stage's extra training digits: prepare/variants.py.
VariantKind = Literal["served", "marker", "brushed", "lowres", "flagged", "crossed", "fonts"]
Optimizer = Literal["sgd", "sgd_momentum", "adam", "adamw", "rmsprop"]
Schedule = Literal["none", "onecycle", "cosine"]
Init = Literal["default", "xavier", "he"]
# Evidently's distance methods (a p-value test would flag smaller shifts as traffic grows).
NumDriftMethod = Literal["wasserstein", "psi", "kl_div", "jensenshannon", "hellinger", "ed"]
CatDriftMethod = Literal["jensenshannon", "psi", "kl_div", "hellinger"]
# How the export stage makes its int8 model (export/quantize.py).
QuantizeMethod = Literal["dynamic", "static"]

Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


S = TypeVar("S", bound="Section")


class Section(BaseModel):
    """A params.yaml section: every key required, none unknown, immutable once built."""

    # coerce_numbers_to_str: `devices: 1` in YAML is the string "1" Lightning also accepts.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)
    SECTION: ClassVar[str]

    @classmethod
    def from_params(cls: type[S], params: Mapping[str, Any], **overrides: Any) -> S:
        """Build this section from the whole params mapping, ``overrides`` on top."""
        values = {**dict(params.get(cls.SECTION) or {}), **overrides}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise UserError(_one_line(cls, exc)) from None

    def replace(self: S, **changes: Any) -> S:
        """A validated copy with ``changes`` (``model_copy`` would skip validation)."""
        return self.from_params({self.SECTION: self.model_dump()}, **changes)


def _one_line(cls: type[Section], exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join([cls.SECTION, *(str(part) for part in err["loc"])])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key {key} (known keys: {', '.join(cls.model_fields)})")
        elif err["type"] == "missing":
            problems.append(f"{key} is missing; add it to params.yaml")
        else:
            problems.append(f"{key}: {err['msg']} (value {err['input']!r})")
    return "params: " + "; ".join(problems)


class DownloadConfig(Section):
    SECTION: ClassVar[str] = "download"
    mirrors: tuple[str, ...]  # tried in order after `mirror`
    mirror: str  # a URL or a local folder tried first; env MNIST_MIRROR wins over it
    sha256: dict[str, Sha256]  # of each *decompressed* IDX file, by file name
    timeout_s: PositiveFloat  # per connect/read: a stalled mirror is abandoned, not waited on
    retries: NonNegativeInt  # extra attempts per mirror for transient errors
    deadline_s: PositiveFloat  # whole-file limit per attempt: a trickling mirror is skipped


class SplitConfig(Section):
    SECTION: ClassVar[str] = "split"
    val_size: PositiveInt  # images held out of the training file for validation
    seed: int


class PrepareConfig(Section):
    SECTION: ClassVar[str] = "prepare"
    # Extra training digits as the service hands them to the model (prepare/variants.py).
    kinds: tuple[VariantKind, ...]
    fonts: tuple[str, ...]  # matplotlib's font files, none of the field set's DejaVu ones
    font_samples: NonNegativeInt  # per font and digit
    seed: int


class TrainConfig(Section):
    SECTION: ClassVar[str] = "train"
    hidden: Annotated[tuple[PositiveInt, ...], Field(min_length=1)]
    activation: Activation
    dropout: Fraction
    batch_norm: StrictBool
    init: Init
    optimizer: Optimizer
    lr: PositiveFloat  # the peak of the schedule for onecycle
    momentum: NonNegativeFloat  # used by sgd_momentum and rmsprop
    weight_decay: NonNegativeFloat
    schedule: Schedule
    label_smoothing: Fraction
    augment_shift: NonNegativeInt  # max random shift in pixels; 0 turns it off
    augment_degrees: NonNegativeFloat  # max random rotation in degrees; 0 = off
    augment_scale: Fraction  # max random zoom, as a fraction (0.1 = 0.9x..1.1x); 0 = off
    augment_elastic: NonNegativeFloat  # elastic distortion, about this many pixels; 0 = off
    augment_stroke: Annotated[float, Field(ge=0.0, le=1.0)]  # max share of a 3x3 dilate/erode
    augment_blur: Annotated[float, Field(ge=0.0, le=1.0)]  # max share of a 3x3 blur mixed in
    batch_size: PositiveInt
    max_epochs: PositiveInt
    seed: int
    accelerator: str  # "auto" picks the GPU when one is present
    devices: str
    strategy: str  # "ddp" spreads one run over devices x num_nodes processes
    num_nodes: PositiveInt
    log_every_n_steps: NonNegativeInt  # only how often Lightning checks; metrics are per epoch
    # Lightning's precision, or "auto": bf16-mixed where the CPU computes bfloat16 natively
    # (train.trainer.resolve_precision), 32-true elsewhere; "bf16-mixed" pays off on recent GPUs
    precision: str
    deterministic: StrictBool  # same machine + same seed -> identical metrics
    compile: StrictBool  # torch.compile the MLP (pays off on GPU for long runs)
    # Each of the users' corrections (data/corrections train part) is seen this many times
    # per epoch; 0 trains without them.
    corrections_weight: NonNegativeInt


class MlflowConfig(Section):
    SECTION: ClassVar[str] = "mlflow"
    # sqlite by default: the file store is deprecated in MLflow 3.
    # $MLFLOW_TRACKING_URI wins over it (tracking.resolve_tracking_uri decides).
    tracking_uri: str
    experiment: str
    registered_model: str


class FieldConfig(Section):
    SECTION: ClassVar[str] = "field"
    # Realistic sets built from the MNIST test split (mnist_mlops.evaluation.fieldsets names them).
    sets: Annotated[tuple[str, ...], Field(min_length=1)]
    n_per_set: PositiveInt  # 300 images: about +-1 % on each accuracy
    seed: int
    # The champion gate: a new model is worse on a set (MNIST test, a field set, the
    # corrections holdout) only when it is lower by more than this many standard errors of
    # two accuracies on that many images (gate.decide.noise_tolerance); 0 = strict.
    gate_z: NonNegativeFloat


class ReferenceConfig(Section):
    SECTION: ClassVar[str] = "reference"
    # The drift reference: the field sets (field params) and this many MNIST test digits.
    test_n: PositiveInt


class MonitorConfig(Section):
    SECTION: ClassVar[str] = "monitor"
    # The drift report (python -m pipeline.monitor): a window of the inference log against
    # the reference stage's table (data/reference.parquet).
    reference_sets: Annotated[tuple[str, ...], Field(min_length=1)]  # its "set" values
    window_hours: PositiveFloat  # the log's last this many hours (--since/--until override)
    min_rows: PositiveInt  # fewer answered images in the window: no verdict
    num_method: NumDriftMethod  # confidence and the image features
    num_threshold: PositiveFloat  # a column drifted when its distance is at least this
    cat_method: CatDriftMethod  # the predicted digit
    cat_threshold: PositiveFloat
    # Per column (log column names): another method or threshold than the two above.
    column_methods: dict[str, NumDriftMethod]
    column_thresholds: dict[str, PositiveFloat]
    drift_share: Annotated[float, Field(gt=0.0, le=1.0)]  # of the columns: drift verdict


class CompareConfig(Section):
    SECTION: ClassVar[str] = "compare"
    # python -m pipeline.compare: champion against challenger on a window of the log.
    window_hours: PositiveFloat  # the log's last this many hours (--since/--until override)
    min_corrections: PositiveInt  # fewer corrected requests both models scored: no verdict
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)]  # McNemar's test level; intervals 1 - alpha


class CorrectionsConfig(Section):
    SECTION: ClassVar[str] = "corrections"
    # Held out by a hash of the request id (never in both parts): the field stage's
    # "corrections" set, which the champion gate compares models on.
    holdout_fraction: Annotated[float, Field(gt=0.0, lt=1.0)]


class QuantizeConfig(BaseModel):
    """``export.quantize``: the int8 model written beside the float one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    method: QuantizeMethod
    preprocess: StrictBool  # onnxruntime's quant_pre_process (shapes, fusions) first
    optimize: StrictBool  # store the graph as ORT optimises it at load (load time only)
    calibration_n: PositiveInt  # static: training images whose activation ranges are kept
    seed: int  # static: which training images


class ExportConfig(Section):
    SECTION: ClassVar[str] = "export"
    opset: PositiveInt
    atol: PositiveFloat  # max |logit_onnx - logit_torch| allowed on the test set
    quantize: QuantizeConfig


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Overlay sections key by key: an overlay lists only the keys it changes."""
    merged = dict(base)
    for name, values in overlay.items():
        if isinstance(values, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = {**merged[name], **values}
        else:
            merged[name] = values
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found; run from the repository root") from None
    except yaml.YAMLError as exc:
        raise UserError(
            f"{path}: not valid YAML ({exc.__class__.__name__}); fix the syntax"
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    return data


def load_params(
    path: str | os.PathLike[str] = "params.yaml", *overlays: str | os.PathLike[str]
) -> dict[str, Any]:
    """Read ``params.yaml``, then each overlay file on top (e.g. ``bench/params-best.yaml``)."""
    params = _read_yaml(Path(path))
    for overlay in overlays:
        params = _merge(params, _read_yaml(Path(overlay)))
    return params
