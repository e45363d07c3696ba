"""The monitoring settings come from the environment, each with one default, checked."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import pytest

from mnist_mlops.core.errors import UserError
from mnist_mlops.monitoring.settings import ENV, MonitoringSettings


def test_defaults_when_nothing_is_set():
    settings = MonitoringSettings.from_env({})
    assert settings == MonitoringSettings()
    assert settings.log_enabled and settings.log_images
    assert settings.feedback_uri.startswith("sqlite:///")


def test_one_setting_turns_image_logging_off():
    settings = MonitoringSettings.from_env({"MNIST_LOG_IMAGES": "off"})
    assert not settings.log_images and settings.log_enabled


def test_every_variable_is_read():
    env = {
        "MNIST_INFERENCE_LOG": "0", "MNIST_LOG_IMAGES": "false",
        "MNIST_INFERENCE_LOG_DIR": "/var/log/mnist", "MNIST_LOG_ROTATE_MB": "4",
        "MNIST_LOG_MAX_MB": "100", "MNIST_LOG_RETENTION_DAYS": "7", "MNIST_LOG_QUEUE": "50",
        "MNIST_FEEDBACK_DB": "postgresql://u@h:5432/d", "MNIST_FEEDBACK_RATE": "0.5",
        "MNIST_FEEDBACK_BURST": "3", "MNIST_LOG_COMPRESSION": "lz4",
        "MNIST_TRUSTED_PROXIES": "10.0.0.1",
    }  # fmt: skip
    assert set(env) == set(ENV.values())
    settings = MonitoringSettings.from_env(env)
    assert settings.model_dump() == {
        "log_enabled": False, "log_images": False, "log_dir": Path("/var/log/mnist"),
        "log_compression": "lz4",
        "rotate_mb": 4.0, "max_total_mb": 100.0, "retention_days": 7.0, "queue_records": 50,
        "feedback_uri": "postgresql://u@h:5432/d", "feedback_rate": 0.5, "feedback_burst": 3,
        "trusted_proxies": (IPv4Network("10.0.0.1/32"),),
    }  # fmt: skip


def test_no_proxy_is_trusted_unless_named():
    assert MonitoringSettings.from_env({}).trusted_proxies == ()
    assert MonitoringSettings.from_env({"MNIST_TRUSTED_PROXIES": " "}).trusted_proxies == ()


def test_trusted_proxies_are_addresses_and_networks_separated_by_commas():
    value = " 127.0.0.1, 10.0.0.0/8,::1 ,fd00::/8,"  # spaces and a trailing comma are fine
    settings = MonitoringSettings.from_env({"MNIST_TRUSTED_PROXIES": value})
    assert settings.trusted_proxies == (
        IPv4Network("127.0.0.1/32"), IPv4Network("10.0.0.0/8"),
        IPv6Network("::1/128"), IPv6Network("fd00::/8"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MNIST_LOG_IMAGES", "maybe", "use on or off"),
        ("MNIST_LOG_ROTATE_MB", "-1", "greater than 0"),
        ("MNIST_LOG_QUEUE", "lots", "valid integer"),
        ("MNIST_LOG_COMPRESSION", "gzip", "'zstd', 'lz4' or 'none'"),
        ("MNIST_FEEDBACK_RATE", "0", "greater than 0"),
        ("MNIST_TRUSTED_PROXIES", "127.0.0.1,nginx", "'nginx' is not an IP address or CIDR"),
        ("MNIST_TRUSTED_PROXIES", "10.0.0.1/8", "has host bits set"),
        ("MNIST_TRUSTED_PROXIES", "10.0.0.1;10.0.0.2", "separated by commas"),
        ("MNIST_TRUSTED_PROXIES", "*", "is not an IP address"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(name, value, says):
    with pytest.raises(UserError) as caught:
        MonitoringSettings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r}") and says in message and "\n" not in message
