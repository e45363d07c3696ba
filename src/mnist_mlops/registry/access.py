"""Who may move the champion: the two users a team's registry needs, and their grants.

    MLFLOW_AUTH_ADMIN_PASSWORD=... MNIST_SERVING_PASSWORD=... MNIST_PIPELINE_PASSWORD=... \
        python -m pipeline.registry users

Once every replica follows the champion alias, whoever may write the registered model
decides what users get. On a server started with MLflow's basic-auth app
(``MLFLOW_AUTH=1 make mlflow-server``) every request names a user, any user may read (the
server's ``default_permission``), and writing is granted per user and per resource, so:

- the services (every replica following ``models:/<model>@champion``) get a user of their
  own with READ on the registered model: they resolve the alias and download the champion,
  and can move nothing;
- the pipeline (its runs, its registered versions, the champion gate) and a person's
  ``promote``/``rollback`` get MANAGE on it. Setting an alias needs EDIT (MLflow checks
  ``can_update`` for SetRegisteredModelAlias) but removing one needs ``can_delete``
  (DeleteRegisteredModelAlias), which only MANAGE carries, and a promotion of the challenger
  removes the challenger alias (:func:`~mnist_mlops.registry.aliases.record_move`). It also
  gets EDIT on the experiment when that exists already (whoever creates one manages it).

Running it again sets each user's password to the one in the environment and the grants to
these: rotating a password is running it with the new one. MLflow's client reads who it is
from ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` at each request; here the
admin's stand there for these calls only.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mnist_mlops.registry.connect import RegistryError, first_line

# MLflow's own variables: the server creates its admin from them, a client signs in with them.
ADMIN_USERNAME_ENV, ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"
USERNAME_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
DEFAULT_ADMIN = "admin"  # MLflow's default admin_username


@dataclass(frozen=True)
class TeamUser:
    """One user a team needs: what uses it, its name and password's variable, its grants."""

    role: str
    username: str
    password_env: str
    model_permission: str  # on the registered model
    experiment_permission: str | None  # on the experiment, when it exists


SERVING = TeamUser("services", "mnist-serving", "MNIST_SERVING_PASSWORD", "READ", None)
PIPELINE = TeamUser("pipeline", "mnist-pipeline", "MNIST_PIPELINE_PASSWORD", "MANAGE", "EDIT")
TEAM = (SERVING, PIPELINE)


def passwords_from(env: Mapping[str, str]) -> tuple[tuple[str, str], dict[TeamUser, str]]:
    """(admin name, admin password) and each team user's password, from ``env``; one line
    naming every variable that is missing."""
    needed = [ADMIN_PASSWORD_ENV, *(u.password_env for u in TEAM)]
    missing = [name for name in needed if not env.get(name)]
    if missing:
        raise RegistryError(
            f"set {', '.join(missing)}: the server's admin password (as the server was "
            "started with) and a password of 12 characters or more for each user to create"
        )
    admin = (env.get(ADMIN_USERNAME_ENV) or DEFAULT_ADMIN, env[ADMIN_PASSWORD_ENV])
    return admin, {user: env[user.password_env] for user in TEAM}


def grant_team(
    tracking_uri: str,
    model_name: str,
    experiment: str,
    admin: tuple[str, str],
    passwords: Mapping[TeamUser, str],
) -> list[str]:
    """As ``admin``, create (or set the password of) each user and grant it its permissions
    on ``model_name`` (registered or not yet) and ``experiment`` (if it exists); one line
    per user saying what it may do."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    done = []
    with _signed_in(*admin):
        users = _users_client(tracking_uri)
        try:
            found = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(experiment)
            for user, password in passwords.items():
                how = _create_or_update(users, user, password)
                grants = [("registered_model", model_name, user.model_permission)]
                if found is not None and user.experiment_permission:
                    grants.append(("experiment", found.experiment_id, user.experiment_permission))
                for resource_type, resource_id, permission in grants:
                    _grant(users, user.username, resource_type, resource_id, permission)
                what = ", ".join(f"{p} on {t} {i}" for t, i, p in grants)
                done.append(f"{user.username} ({user.role}, {how}): {what}")
        except MlflowException as exc:
            raise _refused(exc, tracking_uri, admin[0]) from None
    return done


def _users_client(tracking_uri: str) -> Any:
    """MLflow's client of the basic-auth app's users API."""
    from mlflow.server import get_app_client

    with warnings.catch_warnings():
        # It lives in MLflow's server package, whose import warns about Starlette's WSGI
        # middleware: MLflow's to change, and the warning would break the one-line answer.
        warnings.filterwarnings("ignore", message=r"starlette\.middleware\.wsgi is deprecated")
        return get_app_client("basic-auth", tracking_uri=tracking_uri)


def _create_or_update(users: Any, user: TeamUser, password: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        users.create_user(user.username, password)
        return "created"
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            if exc.error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
                raise RegistryError(
                    f"the server refused {user.password_env} for {user.username}: "
                    f"{first_line(exc).removeprefix('INVALID_PARAMETER_VALUE: ')}"
                ) from None
            raise
    users.update_user_password(user.username, password)
    return "password set"


def _grant(users: Any, username: str, resource_type: str, resource_id: str, level: str) -> None:
    """``level`` on the resource, whatever ``username`` had on it before."""
    from mlflow.exceptions import MlflowException

    try:
        users.grant_user_permission(username, resource_type, resource_id, level)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        users.revoke_user_permission(username, resource_type, resource_id)
        users.grant_user_permission(username, resource_type, resource_id, level)


def _refused(exc: Exception, tracking_uri: str, admin: str) -> Exception:
    code = getattr(exc, "error_code", "")
    if code == "UNAUTHENTICATED":
        return RegistryError(
            f"the server at {tracking_uri} refused {admin}'s password (401); set "
            f"{ADMIN_USERNAME_ENV} and {ADMIN_PASSWORD_ENV} to its admin's"
        )
    if code == "PERMISSION_DENIED":
        return RegistryError(
            f"{admin} is not an admin of the server at {tracking_uri} (403); set "
            f"{ADMIN_USERNAME_ENV} and {ADMIN_PASSWORD_ENV} to its admin's"
        )
    if code == "ENDPOINT_NOT_FOUND":
        return RegistryError(
            f"the server at {tracking_uri} runs without authentication (no users API); "
            "start it with MLFLOW_AUTH=1 make mlflow-server (docs/registry.md)"
        )
    return RegistryError(
        f"the server at {tracking_uri} did not answer ({first_line(exc)}); start it or set "
        "MLFLOW_TRACKING_URI to one that runs"
    )


@contextlib.contextmanager
def _signed_in(username: str, password: str) -> Iterator[None]:
    """MLflow's client signs in as ``username`` inside the block, as before it after."""
    before = {key: os.environ.get(key) for key in (USERNAME_ENV, PASSWORD_ENV)}
    os.environ.update({USERNAME_ENV: username, PASSWORD_ENV: password})
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
