"""``python -m pipeline.registry`` as a person runs it: each command answers in one line or a
table, a refusal is one line on stderr and exit code 2, never a traceback; and two movers
at once get the history numbers one after the other."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from mnist_mlops.gate.decide import promote_if_better
from mnist_mlops.registry.history import read_history
from support import ROOT
from support.stages import one_line_error
from support.stages import registry_cli as cli

pytestmark = pytest.mark.slow  # a subprocess per command, each importing MLflow
HANG_S = 120  # a hang guard: each command returns in seconds


def params(folder: Path, uri: str, name: str) -> Path:
    path = folder / "params.yaml"
    mlflow = {"tracking_uri": uri, "experiment": "registry", "registered_model": name}
    path.write_text(yaml.safe_dump({"mlflow": mlflow}))
    return path


def test_history_promote_and_rollback_from_the_command_line(store, name, tmp_path):
    v1, v2 = store.register(name, 0.95), store.register(name, 0.96)
    bare = store.register(name, 0.99, card=False)
    promote_if_better(store.uri, name, v1, {"test_accuracy": 0.95})
    p = params(tmp_path, store.uri, name)

    done = cli(p, "promote", v2, "--reason", "the photo set was mislabelled")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{name}@champion: v1 -> v2 (promote #2)"
    assert "re-run the export stage" in one_line_error(cli(p, "promote", bare, "--reason", "x"))
    assert "has no version '7'" in one_line_error(cli(p, "promote", "7", "--reason", "x"))
    done = cli(p, "rollback", "--reason", "v2 misreads sevens")
    assert done.stdout.strip() == f"{name}@champion: v2 -> v1 (rollback #3)"
    assert "no previous one" in one_line_error(cli(p, "rollback", "--reason", "again"))

    table = cli(p, "history")
    assert table.returncode == 0, table.stderr
    header, columns, *lines = table.stdout.strip().splitlines()
    rows = [line for line in lines if not line.startswith(" ")]
    details = [line.strip() for line in lines if line.startswith(" ")]
    assert header == f"{name} at {store.uri}: champion v1, challenger none"
    assert columns.split() == ["#", "time", "(UTC)", "alias", "action", "from", "to", "user",
                               "reason"]  # fmt: skip
    assert [r.split()[3:7] for r in rows] == [
        ["champion", "gate", "-", "v1"],
        ["champion", "promote", "v1", "v2"],
        ["champion", "rollback", "v2", "v1"],
    ]
    assert rows[1].endswith("the photo set was mislabelled")
    # Under each move: the command that made it and the numbers it traded.
    assert details[2].startswith(f"python -m pipeline.registry --params {p} promote {v2}")
    assert details[3] == "test_accuracy 0.9500 -> 0.9600"
    data = json.loads(cli(p, "history", "--json").stdout)
    assert data["aliases"] == {"champion": v1, "challenger": None}
    assert [e["action"] for e in data["events"]] == ["gate", "promote", "rollback"]
    assert data["events"][1]["command"].startswith(f"python -m pipeline.registry --params {p}")
    assert data["events"][1]["metrics"] == {
        "from": {"test_accuracy": 0.95},
        "to": {"test_accuracy": 0.96},
    }


def test_no_champion_and_the_challenger(store, name, tmp_path):
    version = store.register(name, 0.95)
    p = params(tmp_path, store.uri, name)
    assert "has no champion: nothing to roll back" in one_line_error(
        cli(p, "rollback", "--reason", "x")
    )
    done = cli(p, "challenger", version)
    assert done.stdout.strip() == f"{name}@challenger: none -> v1 (challenger #1)"
    assert cli(p, "challenger", "--clear").stdout.strip().endswith("v1 -> none (challenger #2)")


def test_an_unreachable_or_missing_registry_is_one_line(tmp_path):
    missing = params(tmp_path, f"sqlite:///{tmp_path}/nowhere.db", "mnist-mlp")
    assert "no registry at" in one_line_error(cli(missing, "history"))
    assert not (tmp_path / "nowhere.db").exists()  # not created empty on the way
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = params(tmp_path, f"http://127.0.0.1:{port}", "mnist-mlp")
    line = one_line_error(cli(down, "rollback", "--reason", "x"))
    assert line == (
        f"error: the registry at http://127.0.0.1:{port} did not answer (Connection refused); "
        "start it or set MLFLOW_TRACKING_URI to one that runs"
    )
    # $MLFLOW_TRACKING_URI wins over params, as in every stage.
    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path}/also-nowhere.db"
    try:
        assert "also-nowhere.db" in one_line_error(cli(down, "history"))
    finally:
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before


def test_two_promoters_at_once_get_numbers_one_after_the_other(store, name, tmp_path):
    """A is held between numbering its event and writing it (the pause point); B starts
    then. Without the lock B would read the same next number and one event would overwrite
    the other; with it B waits, and numbers A's move first."""
    v1, v2, v3 = (store.register(name, acc) for acc in (0.95, 0.96, 0.97))
    promote_if_better(store.uri, name, v1, {"test_accuracy": 0.95})
    p, marker = params(tmp_path, store.uri, name), tmp_path / "paused"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    command = [sys.executable, "-m", "pipeline.registry", "--params", str(p), "promote"]
    a = subprocess.Popen([*command, v2, "--reason", "a"], cwd=ROOT, text=True,
                         env={**env, "MNIST_PAUSE_AT": f"history-numbered:{marker}"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    b = None
    try:
        deadline = time.monotonic() + HANG_S
        while not marker.exists():
            assert a.poll() is None, a.communicate()
            assert time.monotonic() < deadline, "A never reached its pause point"
            time.sleep(0.05)
        b = subprocess.Popen([*command, v3, "--reason", "b"], cwd=ROOT, text=True, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        waiting = threading.Event()

        def watch() -> None:
            for line in b.stderr:  # type: ignore[union-attr]
                if "waiting for another champion decision" in line:
                    waiting.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        while not waiting.is_set():
            assert b.poll() is None or waiting.is_set(), "B finished while A held the lock"
            assert time.monotonic() < deadline, "B never waited for A"
            time.sleep(0.05)
        marker.unlink()  # release A
        assert a.wait(HANG_S) == 0, a.communicate()
        assert b.wait(HANG_S) == 0
        watcher.join(HANG_S)
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
    events = read_history(store.uri, name)
    assert [(e.number, e.action, e.from_version, e.to_version) for e in events] == [
        (1, "gate", None, v1),
        (2, "promote", v1, v2),
        (3, "promote", v2, v3),  # B saw A's move
    ]
