"""Two champion gates on two machines, one tracking server: with ``MNIST_REGISTRY_LOCK_DB``
they take turns, without it they race.

Each "machine" is a process of its own with a cache folder of its own, so their file locks
are two files and only the PostgreSQL advisory lock can serialise them. Gate A is held by
the ``history-numbered`` pause point inside its read-compare-move (it has read the champion
and decided, and not yet moved the alias) while gate B starts; what happens next is the
test's subject, and the moment is the test's choice, never a sleep's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnist_mlops.core.errors import UserError
from mnist_mlops.core.pause import PAUSE_ENV
from mnist_mlops.registry.aliases import CHAMPION, promotion_lock
from mnist_mlops.registry.history import read_history
from mnist_mlops.registry.shared_lock import LOCK_DB_ENV, lock_key, redacted
from support import ROOT
from support.bento_process import free_port
from support.registry_store import Store, make_store

HANG_S = 300  # a hang guard: every wait below ends as soon as its condition holds
WAITING = "waiting for another champion decision"

# The field stage's gate (gate_scores ends in promote_if_better), logging as a stage does.
GATE = """
import json, logging, sys
from mnist_mlops.gate.decide import promote_if_better
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
uri, name, version, accuracy = sys.argv[1:]
print(json.dumps(promote_if_better(uri, name, version, {"test_accuracy": float(accuracy)})))
"""


@dataclass
class Gate:
    """One gate process on a "machine" (a folder: its cache, its output)."""

    proc: subprocess.Popen
    folder: Path

    def result(self) -> dict:
        assert self.proc.wait(HANG_S) == 0, self.stderr()
        return json.loads((self.folder / "stdout").read_text().splitlines()[-1])

    def stderr(self) -> str:
        return (self.folder / "stderr").read_text()


@pytest.fixture(scope="module")
def server_store(mlflow_server, tmp_path_factory) -> Iterator[Store]:
    """An experiment on the real server; this test process is a machine of its own."""
    folder = tmp_path_factory.mktemp("server-registry")
    with pytest.MonkeyPatch.context() as env:
        env.chdir(folder)
        env.setenv("XDG_CACHE_HOME", str(folder / "cache"))  # this test process's own machine
        env.delenv(LOCK_DB_ENV, raising=False)
        yield make_store(folder, server=mlflow_server.uri)


@pytest.fixture
def gates(tmp_path) -> Iterator[Callable[..., Gate]]:
    """``start(machine, uri, name, version, accuracy, lock_db=None, pause=None)``: a gate
    process on a machine of its own; any still running at the end is killed."""
    started: list[Gate] = []

    def start(machine, uri, name, version, accuracy, lock_db=None, pause=None) -> Gate:
        folder = tmp_path / machine
        folder.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in (LOCK_DB_ENV, PAUSE_ENV)}
        env.update(PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}",
                   XDG_CACHE_HOME=str(folder / "cache"))  # fmt: skip
        if lock_db is not None:
            env[LOCK_DB_ENV] = lock_db
        if pause is not None:
            env[PAUSE_ENV] = f"history-numbered:{pause}"
        with open(folder / "stdout", "w") as out, open(folder / "stderr", "w") as err:
            command = [sys.executable, "-c", GATE, uri, name, version, str(accuracy)]
            proc = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=err)
        started.append(Gate(proc, folder))
        return started[-1]

    yield start
    for gate in started:
        if gate.proc.poll() is None:
            gate.proc.kill()
            gate.proc.wait()


def wait_until(condition: Callable[[], bool], what: str, *running: Gate) -> None:
    """Until ``condition()``; fails at once if one of ``running`` exits first."""
    deadline = time.monotonic() + HANG_S
    while not condition():
        for gate in running:
            assert gate.proc.poll() is None, f"exited before {what}:\n{gate.stderr()}"
        assert time.monotonic() < deadline, f"no {what} after {HANG_S} s"
        time.sleep(0.05)


@pytest.fixture
def holders(mlflow_server) -> Iterator[Callable[[str], list[bool]]]:
    """``holders(name)``: ``granted`` for each session that holds or waits for the advisory
    lock on ``name``'s key, as PostgreSQL itself reports them (holder first)."""
    import psycopg

    query = (
        "SELECT granted FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 "
        "AND classid::bigint = %s AND objid::bigint = %s ORDER BY granted DESC"
    )
    with psycopg.connect(mlflow_server.database, autocommit=True) as conn:

        def probe(name: str) -> list[bool]:
            key = lock_key(name) & 0xFFFF_FFFF_FFFF_FFFF  # a bigint key: classid high, objid low
            return [row[0] for row in conn.execute(query, (key >> 32, key & 0xFFFF_FFFF))]

        yield probe


def moves(uri: str, name: str) -> list[tuple]:
    return [(e.number, e.action, e.from_version, e.to_version) for e in read_history(uri, name)]


def three_versions(store: Store, name: str) -> tuple[str, str, str]:
    """v1 the champion at 0.90 by a gate's move; v2 and v3 registered, not yet judged."""
    from mnist_mlops.gate.decide import promote_if_better

    v1, v2, v3 = (store.register(name, acc) for acc in (0.90, 0.99, 0.95))
    promote_if_better(store.uri, name, v1, {"test_accuracy": 0.90})
    return v1, v2, v3


# ---- without a database: one line, never a password -----------------------------------


def test_an_unreachable_lock_database_is_one_line_naming_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(LOCK_DB_ENV, f"postgresql://gate:s3cret@127.0.0.1:{free_port()}/mlflow")
    with pytest.raises(UserError) as caught, promotion_lock("http://mlflow:5000", "m"):
        pytest.fail("the block ran without the lock")
    line = str(caught.value)
    assert "\n" not in line and "s3cret" not in line
    assert LOCK_DB_ENV in line and "postgresql://gate:***@127.0.0.1:" in line
    assert "Connection refused" in line


@pytest.mark.parametrize("value", ["host=db password=s3cret", "mysql://u:s3cret@db/m"])
def test_a_lock_database_that_is_not_postgresql_is_refused(value, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(LOCK_DB_ENV, value)
    with pytest.raises(UserError, match=LOCK_DB_ENV) as caught, promotion_lock("x", "m"):
        pass
    assert "s3cret" not in str(caught.value)


def test_a_logged_uri_keeps_no_password():
    assert redacted("postgresql://gate:s3cret@db:5432/mlflow?password=x") == (
        "postgresql://gate:***@db:5432/mlflow"
    )
    assert redacted("postgresql://gate@db/mlflow") == "postgresql://gate@db/mlflow"


def test_every_machine_derives_the_same_key():
    """Fixed here, so a change to the key (two versions of the code in one team would then
    lock two different keys) fails before it ships."""
    assert lock_key("mnist-mlp") == lock_key("mnist-mlp") == 8156301821315361680
    assert lock_key("mnist-mlp") != lock_key("mnist-cnn")


# ---- two machines, one server -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("b_accuracy", [0.95, 0.995], ids=["b-worse", "b-better"])
def test_with_the_setting_the_second_gate_waits_and_judges_the_winner(
    server_store, mlflow_server, gates, holders, tmp_path, b_accuracy
):
    store, db = server_store, mlflow_server.database
    name = f"across-b-{round(b_accuracy * 1000)}"
    v1, v2, v3 = three_versions(store, name)
    marker = tmp_path / "a-paused"
    a = gates("machine-a", store.uri, name, v2, 0.99, lock_db=db, pause=marker)
    wait_until(marker.exists, "gate A inside its move", a)
    assert holders(name) == [True]  # A holds the database's lock while it decides
    b = gates("machine-b", store.uri, name, v3, b_accuracy, lock_db=db)
    wait_until(lambda: holders(name) == [True, False], "gate B waiting on the database", a, b)
    marker.unlink()  # A moves the alias and lets go
    first, second = a.result(), b.result()

    assert first["promoted"] and first["previous"] == v1
    assert second["previous"] == v2  # B judged the winner, not the champion it started from
    beats_winner = b_accuracy > 0.99
    assert second["promoted"] is beats_winner
    assert second["worse_on"] == ([] if beats_winner else ["test_accuracy"])
    assert moves(store.uri, name) == [
        (1, "gate", None, v1),
        (2, "gate", v1, v2),
        *([(3, "gate", v2, v3)] if beats_winner else []),
    ]
    champion = store.client.get_model_version_by_alias(name, CHAMPION).version
    assert str(champion) == (v3 if beats_winner else v2)
    assert f"{WAITING} for {name} on another machine to finish ({LOCK_DB_ENV}, " in b.stderr()
    assert holders(name) == []  # both released
    for machine in ("machine-a", "machine-b"):  # each took its own file lock, too
        assert list((tmp_path / machine / "cache" / "mnist-mlops").glob("promote-*.lock"))


@pytest.mark.slow
def test_without_the_setting_two_machines_both_move_against_the_stale_champion(
    server_store, gates, tmp_path
):
    """Today's hazard, made to happen: B runs its whole gate while A is inside its own,
    both compare against v1, both "promote", and A's later write undoes B's move and
    overwrites its event in the history."""
    store, name = server_store, "across-unset"
    v1, v2, v3 = three_versions(store, name)
    marker = tmp_path / "a-paused"
    a = gates("machine-a", store.uri, name, v2, 0.99, pause=marker)
    wait_until(marker.exists, "gate A inside its move", a)
    b = gates("machine-b", store.uri, name, v3, 0.95)
    second = b.result()  # nothing made B wait
    assert a.proc.poll() is None and marker.exists()
    marker.unlink()
    first = a.result()

    assert first["promoted"] and first["previous"] == v1
    assert second["promoted"] and second["previous"] == v1  # 0.95 would lose to A's 0.99
    champion = store.client.get_model_version_by_alias(name, CHAMPION).version
    assert str(champion) == v2  # the last write won
    assert moves(store.uri, name) == [(1, "gate", None, v1), (2, "gate", v1, v2)]  # B's is gone
    tags = store.client.get_model_version(name, v3).tags
    assert tags["gate_decision"] == "promoted" and "became_champion" in tags
    assert WAITING not in b.stderr()


@pytest.mark.slow
def test_a_gate_killed_inside_its_move_lets_the_other_machine_go_on(
    server_store, mlflow_server, gates, holders, tmp_path
):
    """The lock dies with its connection: a gate killed mid-move never leaves it held."""
    store, db, name = server_store, mlflow_server.database, "across-killed"
    v1, v2, v3 = three_versions(store, name)
    marker = tmp_path / "a-paused"
    a = gates("machine-a", store.uri, name, v2, 0.99, lock_db=db, pause=marker)
    wait_until(marker.exists, "gate A inside its move", a)
    b = gates("machine-b", store.uri, name, v3, 0.95, lock_db=db)
    wait_until(lambda: holders(name) == [True, False], "gate B waiting on the database", a, b)
    a.proc.send_signal(signal.SIGKILL)
    assert a.proc.wait(HANG_S) == -signal.SIGKILL
    second = b.result()

    assert second["promoted"] and second["previous"] == v1  # A never moved the alias
    assert moves(store.uri, name) == [(1, "gate", None, v1), (2, "gate", v1, v3)]
    assert holders(name) == []
