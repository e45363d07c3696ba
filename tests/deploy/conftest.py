"""The deploy tests' shared store: a database of its own on the team's PostgreSQL.

Replicas share one corrections store; here it is a fresh database on the session's real
PostgreSQL (the ``mlflow_server`` fixture's, started by scripts/mlflow_server.sh), so the
corrections-store tests that drop their tables on that server never touch it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from support.mlflow_server import MlflowServer


@pytest.fixture(scope="module")
def team_store(mlflow_server: MlflowServer) -> Iterator[str]:
    """postgresql:// URI of an empty database for one module's replicas, dropped after."""
    import psycopg

    name = f"mnist_replicas_{secrets.token_hex(4)}"
    admin = mlflow_server.database
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"{admin.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:  # the replicas are gone by now
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
