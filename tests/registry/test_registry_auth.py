"""Who may move the champion, on the team's server with MLflow's basic auth.

scripts/mlflow_server.sh with ``MLFLOW_AUTH=1`` (a real server on PostgreSQL), the users
made by ``python -m pipeline.registry users``: an anonymous caller is refused (401), the
services' user reads the champion through the path a following replica takes and is refused
moving it (403), the pipeline's user moves it with promote, rollback and challenger. And a
password written into a URI never reaches a message.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mnist_mlops.core.errors import UserError, redact
from mnist_mlops.gate.decide import promote_if_better
from mnist_mlops.registry.access import PIPELINE, SERVING
from mnist_mlops.registry.aliases import CHALLENGER, CHAMPION
from mnist_mlops.registry.connect import RegistryError
from mnist_mlops.registry.served import fetch, resolve
from mnist_mlops.tracking.runs import resolve_tracking_uri
from support.mlflow_server import MlflowServer, mlflow_server
from support.registry_store import Store, make_store
from support.stages import one_line_error
from support.stages import registry_cli as cli

NAME = "digits-auth"
ADMIN_PASSWORD = "admin-password-for-the-tests"  # MLflow wants 12 characters or more
PASSWORDS = {SERVING: "serving-password-1234", PIPELINE: "pipeline-password-1234"}
SIGN_IN = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
ENV = {"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
ENV.update({user.password_env: password for user, password in PASSWORDS.items()})


@pytest.fixture(scope="module")
def server() -> Iterator[MlflowServer]:
    with mlflow_server({"MLFLOW_AUTH": "1", "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}) as s:
        yield s


@pytest.fixture(scope="module")
def store(server, tmp_path_factory) -> Iterator[Store]:
    """Two versions of NAME, registered by the admin: the team's users may do only what
    ``users`` grants them, not what creating the model would have."""
    folder = tmp_path_factory.mktemp("auth")
    with pytest.MonkeyPatch.context() as env:
        env.chdir(folder)
        env.setenv("XDG_CACHE_HOME", str(folder / "cache"))  # the promotion lock's folder
        env.setenv(SIGN_IN[0], "admin")
        env.setenv(SIGN_IN[1], ADMIN_PASSWORD)
        store = make_store(folder, server=server.uri)
        for accuracy in (0.95, 0.96):  # v1, v2
            store.register(NAME, accuracy)
        yield store


@pytest.fixture(scope="module")
def params(store, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SIGN_IN[0], "admin")
        env.setenv(SIGN_IN[1], ADMIN_PASSWORD)
        experiment = store.client.get_experiment(store.experiment).name
    mlflow = {"tracking_uri": store.uri, "experiment": experiment, "registered_model": NAME}
    path.write_text(yaml.safe_dump({"mlflow": mlflow}))
    return path


@pytest.fixture(scope="module")
def team(params) -> str:
    """``users`` run once, as a team runs it: its answer."""
    with pytest.MonkeyPatch.context() as env:
        for key in SIGN_IN:
            env.delenv(key, raising=False)
        for key, value in ENV.items():
            env.setenv(key, value)
        done = cli(params, "users")
    assert done.returncode == 0, done.stderr
    return done.stdout


def sign_in(env: pytest.MonkeyPatch, user=None) -> None:
    """MLflow's own variables, as a service's or the pipeline's environment sets them."""
    for key in SIGN_IN:
        env.delenv(key, raising=False)
    if user is not None:
        env.setenv(SIGN_IN[0], user.username)
        env.setenv(SIGN_IN[1], PASSWORDS[user])


def champion(server: MlflowServer) -> str:
    """Where the champion points, as the services' user reads it."""
    with pytest.MonkeyPatch.context() as env:
        sign_in(env, SERVING)
        return resolve(server.uri, f"models:/{NAME}@{CHAMPION}").version


@pytest.mark.slow
def test_users_makes_the_team_and_keeps_the_passwords_to_the_environment(
    server, store, team, params, monkeypatch
):
    assert team.splitlines() == [
        f"mnist-serving (services, created): READ on registered_model {NAME}",
        f"mnist-pipeline (pipeline, created): MANAGE on registered_model {NAME}, "
        f"EDIT on experiment {store.experiment}",
    ]
    # Run again: the same users, their passwords set from the environment again.
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    sign_in(monkeypatch)
    again = cli(params, "users")
    assert again.returncode == 0, again.stderr
    assert [line.split(":")[0] for line in again.stdout.splitlines()] == [
        "mnist-serving (services, password set)",
        "mnist-pipeline (pipeline, password set)",
    ]
    auth = server.folder / "auth"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o700
    for path in auth.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    secrets = [ADMIN_PASSWORD, *PASSWORDS.values()]
    for text in ((auth / "basic_auth.ini").read_text(), (server.folder / "server.log").read_text()):
        assert not [s for s in secrets if s in text]


@pytest.mark.slow
def test_users_refusals_are_one_line(server, team, params, monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    sign_in(monkeypatch)
    monkeypatch.delenv(PIPELINE.password_env)
    assert PIPELINE.password_env in one_line_error(cli(params, "users"))
    monkeypatch.setenv(PIPELINE.password_env, PASSWORDS[PIPELINE])
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "not-the-admin-password")
    line = one_line_error(cli(params, "users"))
    assert "refused admin's password (401)" in line and "not-the-admin" not in line
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv(SERVING.password_env, "short")
    assert "12 characters" in one_line_error(cli(params, "users"))


@pytest.mark.slow
def test_only_the_pipelines_user_moves_the_champion(
    server, store, team, params, monkeypatch, tmp_path
):
    import httpx
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    v1, v2 = "1", "2"
    sign_in(monkeypatch, PIPELINE)
    done = cli(params, "promote", v1, "--reason", "first")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{NAME}@champion: none -> v1 (promote #1)"

    # Anonymous: refused before anything is read.
    sign_in(monkeypatch)
    alias = {"name": NAME, "alias": CHAMPION, "version": v2}
    answer = httpx.post(f"{server.uri}/api/2.0/mlflow/registered-models/alias", json=alias)
    assert answer.status_code == 401
    with pytest.raises(MlflowException) as refused:
        MlflowClient(server.uri).set_registered_model_alias(NAME, CHAMPION, v2)
    assert (refused.value.error_code, refused.value.get_http_status_code()) == (
        "UNAUTHENTICATED",
        401,
    )
    assert "(401)" in one_line_error(cli(params, "promote", v2, "--reason", "anyone"))
    assert champion(server) == v1

    # The services' user: reads the champion as a following replica does, moves nothing.
    sign_in(monkeypatch, SERVING)
    served = resolve(server.uri, f"models:/{NAME}@{CHAMPION}")
    assert served.version == v1
    assert fetch(server.uri, served, tmp_path / "served").name == "served.json"
    with pytest.raises(MlflowException) as refused:
        MlflowClient(server.uri).set_registered_model_alias(NAME, CHAMPION, v2)
    assert (refused.value.error_code, refused.value.get_http_status_code()) == (
        "PERMISSION_DENIED",
        403,
    )
    line = one_line_error(cli(params, "promote", v2, "--reason", "a service"))
    assert "user 'mnist-serving' may not move the aliases" in line and "(403)" in line
    # The gate, as `dvc repro` runs it under a user that may only read: one line too.
    with pytest.raises(RegistryError, match=r"user 'mnist-serving' may not tag .*\(403\)"):
        promote_if_better(server.uri, NAME, v2, {"test_accuracy": 0.99})
    assert champion(server) == v1

    # The pipeline's user: promote, rollback, and a challenger that becomes the champion
    # (which removes the challenger alias: the reason it gets MANAGE, not EDIT).
    sign_in(monkeypatch, PIPELINE)
    steps = [
        (("promote", v2, "--reason", "better"), "champion: v1 -> v2 (promote #2)"),
        (("rollback", "--reason", "worse on photos"), "champion: v2 -> v1 (rollback #3)"),
        (("challenger", v2), "challenger: none -> v2 (challenger #4)"),
        (("promote", v2, "--reason", "fixed"), "champion: v1 -> v2 (promote #5)"),
    ]
    for args, moved in steps:
        done = cli(params, *args)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"{NAME}@{moved}"
    assert champion(server) == v2
    with pytest.raises(RegistryError):
        resolve(server.uri, f"models:/{NAME}@{CHALLENGER}")  # cleared by the promotion


@pytest.mark.slow
def test_a_password_in_the_uri_never_reaches_a_message(server, team, monkeypatch):
    sign_in(monkeypatch)  # no user but the one in the URI
    host = server.uri.removeprefix("http://")
    with pytest.raises(RegistryError) as refused:
        resolve(f"http://mnist-serving:not-its-password@{host}", f"models:/{NAME}@{CHAMPION}")
    assert "not-its-password" not in str(refused.value)
    assert f"mnist-serving:***@{host}" in str(refused.value) and "(401)" in str(refused.value)


def test_a_user_error_hides_every_password_in_a_uri():
    text = "http://gate:s3:cr%40t@host:5000/api and postgresql://mlflow@db/x and https://h/a@b"
    assert redact(text) == (
        "http://gate:***@host:5000/api and postgresql://mlflow@db/x and https://h/a@b"
    )
    error = UserError("postgresql://mlflow:pw123@db.internal:5432/mlflow did not answer")
    assert str(error) == "postgresql://mlflow:***@db.internal:5432/mlflow did not answer"


def test_the_pipeline_refuses_a_tracking_uri_with_a_password(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mnist-pipeline:pipeline-password@h:5000")
    with pytest.raises(UserError) as refused:
        resolve_tracking_uri("sqlite:///mlflow.db")
    assert "pipeline-password" not in str(refused.value)
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in str(refused.value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://h:5000")
    assert resolve_tracking_uri("sqlite:///mlflow.db") == "http://h:5000"
