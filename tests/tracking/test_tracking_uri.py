"""Where runs go: one function decides, the environment wins, relative sqlite is anchored."""

from __future__ import annotations

import pytest

from mnist_mlops.tracking.runs import resolve_tracking_uri


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_env_wins_over_params(clean_env):
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri("sqlite:///mlflow.db") == "http://127.0.0.1:5000"


def test_params_used_when_env_unset_or_empty(clean_env):
    assert resolve_tracking_uri("http://mlflow.internal:5000") == "http://mlflow.internal:5000"
    clean_env.setenv("MLFLOW_TRACKING_URI", "")
    assert resolve_tracking_uri("http://mlflow.internal:5000") == "http://mlflow.internal:5000"


def test_relative_sqlite_is_anchored_at_the_dvc_root(clean_env, tmp_path):
    # A queued experiment runs in a temporary copy; DVC_ROOT names the real workspace.
    workspace = tmp_path / "workspace"
    clean_env.setenv("DVC_ROOT", str(workspace))
    assert resolve_tracking_uri("sqlite:///mlflow.db") == f"sqlite:///{workspace}/mlflow.db"
    assert resolve_tracking_uri("sqlite:///db/m.db?timeout=30") == (
        f"sqlite:///{workspace}/db/m.db?timeout=30"
    )


def test_relative_sqlite_without_dvc_is_the_working_directory(clean_env, tmp_path):
    assert (
        resolve_tracking_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    )


def test_absolute_sqlite_and_servers_are_left_alone(clean_env):
    clean_env.setenv("DVC_ROOT", "/somewhere/else")
    assert resolve_tracking_uri("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"
    assert resolve_tracking_uri("https://mlflow.example") == "https://mlflow.example"
