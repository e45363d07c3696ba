"""The service's settings: one validated model; a bad value is one line, from bentoml serve too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_mlops.core.errors import UserError
from serving.settings import ENV, ServiceSettings
from support import ROOT as REPO


def test_defaults_when_nothing_is_set():
    settings = ServiceSettings.from_env({})
    assert settings == ServiceSettings()
    assert settings.request_timeout_s > settings.body_timeout_s  # a stalled body: 408, not 504


def test_every_variable_is_read():
    env = {"MNIST_API_WORKERS": "3", "MNIST_MAX_CONCURRENCY": "8", "MNIST_BODY_TIMEOUT_S": "2.5",
           "MNIST_HEADER_TIMEOUT_S": "1", "MNIST_KEEPALIVE_S": "30", "MNIST_MODEL_POLL_S": "2",
           "MNIST_CHALLENGER": "canary", "MNIST_CANARY_SHARE": "0.25",
           "MNIST_CANARY_KEY_HEADER": "X-User", "MNIST_SMOKE_PATH": "smoke.npz",
           "MNIST_SMOKE_MIN_ACCURACY": "0.9"}  # fmt: skip
    assert set(env) == set(ENV.values())
    assert ServiceSettings.from_env(env).model_dump() == {
        "api_workers": 3, "max_in_flight": 8, "body_timeout_s": 2.5,
        "header_timeout_s": 1.0, "keepalive_s": 30.0, "poll_s": 2.0, "challenger": "canary",
        "canary_share": 0.25, "canary_key_header": "X-User",
        "smoke_path": Path("smoke.npz"), "smoke_min_accuracy": 0.9,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MNIST_API_WORKERS", "abc", "valid integer"),
        ("MNIST_MAX_CONCURRENCY", "0", "greater than 0"),
        ("MNIST_BODY_TIMEOUT_S", "-1", "greater than 0"),
        ("MNIST_KEEPALIVE_S", "soon", "valid number"),
        ("MNIST_CHALLENGER", "sometimes", "'off', 'shadow' or 'canary'"),
        ("MNIST_CANARY_SHARE", "1.5", "less than or equal to 1"),
    ],
)
def test_a_bad_value_is_one_line_naming_it(name, value, says):
    with pytest.raises(UserError) as refused:
        ServiceSettings.from_env({name: value})
    message = str(refused.value)
    assert message.startswith(f"{name}={value!r}: ") and says in message
    assert "\n" not in message


@pytest.mark.slow
def test_bentoml_serve_with_a_bad_value_exits_with_that_line_and_no_traceback(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true",
           "MNIST_API_WORKERS": "two"}  # fmt: skip
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:MnistClassifier",
               "--host", "127.0.0.1", "--port", "1"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "serving settings: MNIST_API_WORKERS='two': Input should be a valid integer, "
        "unable to parse string as an integer"
    ], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
def test_a_bad_monitoring_value_stops_bentoml_serve_too(tmp_path):
    """Read by each worker, so unchecked it would be a traceback and a worker restarted
    for ever; the service checks it at import, as its own settings."""
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true",
           "MNIST_TRUSTED_PROXIES": "127.0.0.1,nginx"}  # fmt: skip
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:MnistClassifier",
               "--host", "127.0.0.1", "--port", "1"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("serving settings: MNIST_TRUSTED_PROXIES='127.0.0.1,nginx': 'nginx'")
    assert "Traceback" not in done.stdout + done.stderr
