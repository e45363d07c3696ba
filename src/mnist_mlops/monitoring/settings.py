"""The inference log's and the corrections store's settings: each default here, once.

The service reads them from its environment when a worker starts
(:meth:`MonitoringSettings.from_env`); the offline commands (drift report, corrections
export) take the same folder and database URI, so both sides find the same data.
A bad value is one line naming the variable, instead of a service that silently logs
nowhere: serving/service.py checks them at import, so ``bentoml serve`` exits with it.

    MNIST_INFERENCE_LOG        on|off: write the inference log at all (on)
    MNIST_LOG_IMAGES           on|off: keep each 28x28 input the model was given (on)
    MNIST_INFERENCE_LOG_DIR    folder of the log's files (monitoring/inference)
    MNIST_LOG_COMPRESSION      zstd|lz4|none: how the files' columns are compressed (zstd)
    MNIST_LOG_ROTATE_MB        start a new file past this size (16)
    MNIST_LOG_MAX_MB           delete the oldest closed files past this total (1024)
    MNIST_LOG_RETENTION_DAYS   delete files last written longer ago than this (30)
    MNIST_LOG_QUEUE            records waiting for the writer before new ones are dropped (10000)
    MNIST_FEEDBACK_DB          corrections store: sqlite:///path or postgresql://...
                               (sqlite:///monitoring/feedback.sqlite)
    MNIST_FEEDBACK_RATE        corrections accepted per second per client and worker,
                               sustained (2)
    MNIST_FEEDBACK_BURST       ... and in a burst (20); beyond: 429
    MNIST_TRUSTED_PROXIES      addresses or CIDR networks, comma-separated, of the proxies
                               whose X-Forwarded-For names the client (empty: none)
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)

from mnist_mlops.core.errors import UserError

# Field -> environment variable: the one list of the names.
ENV: dict[str, str] = {
    "log_enabled": "MNIST_INFERENCE_LOG",
    "log_images": "MNIST_LOG_IMAGES",
    "log_dir": "MNIST_INFERENCE_LOG_DIR",
    "log_compression": "MNIST_LOG_COMPRESSION",
    "rotate_mb": "MNIST_LOG_ROTATE_MB",
    "max_total_mb": "MNIST_LOG_MAX_MB",
    "retention_days": "MNIST_LOG_RETENTION_DAYS",
    "queue_records": "MNIST_LOG_QUEUE",
    "feedback_uri": "MNIST_FEEDBACK_DB",
    "feedback_rate": "MNIST_FEEDBACK_RATE",
    "feedback_burst": "MNIST_FEEDBACK_BURST",
    "trusted_proxies": "MNIST_TRUSTED_PROXIES",
}
Settings = TypeVar("Settings", bound=BaseModel)
_SWITCH = {"on": True, "off": False, "1": True, "0": False, "true": True, "false": False}


class MonitoringSettings(BaseModel):
    """What the service records about its answers and where the corrections go."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    log_enabled: bool = True
    # The image is what makes a correction usable for training; off keeps only numbers.
    log_images: bool = True
    log_dir: Path = Path("monitoring/inference")
    # zstd: a digit's record ~200 bytes instead of ~860, for ~2 us of the writer's CPU.
    log_compression: Literal["zstd", "lz4", "none"] = "zstd"
    rotate_mb: PositiveFloat = 16.0
    # Bounds the folder: with W workers it never holds more than this + W x rotate_mb.
    max_total_mb: PositiveFloat = 1024.0
    retention_days: PositiveFloat = 30.0
    # A writer that cannot keep up (slow disk) drops records instead of growing memory.
    queue_records: PositiveInt = 10_000
    feedback_uri: str = "sqlite:///monitoring/feedback.sqlite"
    # Per client (serving/rate_limit.py): one user in a loop must not starve the others.
    feedback_rate: PositiveFloat = 2.0
    feedback_burst: PositiveInt = 20
    # Whose X-Forwarded-For is believed (serving/client_address.py). Empty: nobody's, so a
    # client cannot pick its own rate bucket by sending the header.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        """``"10.0.0.1, 192.168.0.0/16"`` -> the networks (an address is a network of one)."""
        if not isinstance(value, str):
            return value
        return tuple(ip_network(entry) for entry in value.split(",") if entry.strip())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MonitoringSettings:
        """The settings the environment sets (unset variables keep their defaults)."""
        return settings_from_env(cls, ENV, environ)


def ip_network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """One address or CIDR network; host bits set (``10.0.0.1/8``) are refused, since
    the writer meant either the host or the network and trust should not be guessed."""
    try:
        return ipaddress.ip_network(entry.strip())
    except ValueError as exc:
        raise ValueError(
            f"{entry.strip()!r} is not an IP address or CIDR network ({exc}); "
            "list them separated by commas, e.g. 127.0.0.1,10.0.0.0/8"
        ) from None


def settings_from_env(
    model: type[Settings], names: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> Settings:
    """``model`` (a pydantic model) from the variables ``names`` maps its fields to; unset or
    empty ones keep their defaults. A bad value is one :class:`UserError` line naming the
    variable, the value and what is allowed (the service's settings read theirs this way too).
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field, name in names.items():
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        if model.model_fields[field].annotation in (bool, "bool"):
            if raw.strip().lower() not in _SWITCH:
                raise UserError(f"{name}={raw!r}: use on or off")
            values[field] = _SWITCH[raw.strip().lower()]
        else:
            values[field] = raw
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = names[str(err["loc"][0])]
        message = err["msg"].removeprefix("Value error, ")  # a validator's own message
        raise UserError(f"{name}={err['input']!r}: {message}") from None
