"""The history on the team's server: PostgreSQL keeps a registered-model tag in a
VARCHAR(5000), which sqlite never enforces, so an event is shortened to fit there too; and
the promotion lock for a server sits in the user's cache folder."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from mnist_mlops.registry.aliases import promote, rollback
from mnist_mlops.registry.history import MAX_CHARS, read_history
from support.registry_store import make_store

pytestmark = pytest.mark.slow  # a real mlflow server on PostgreSQL


def test_long_events_fit_the_servers_column(mlflow_server, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    store = make_store(tmp_path, server=mlflow_server.uri)
    name = "digits-server-history"
    v1, v2 = store.register(name, 0.95), store.register(name, 0.96)
    # The column's limit is real on this store: a longer value is refused.
    with pytest.raises(MlflowException):
        store.client.set_registered_model_tag(name, "probe", "x" * 5001)

    promote(store.uri, name, v1, reason="first")
    promote(store.uri, name, v2, reason="why " * 3000)  # 12,000 characters
    rollback(store.uri, name, reason="back")
    events = read_history(store.uri, name)
    assert [(e.action, e.from_version, e.to_version) for e in events] == [
        ("promote", None, v1),
        ("promote", v1, v2),
        ("rollback", v2, v1),
    ]
    assert events[1].reason.startswith("why why") and events[1].reason.endswith("…")
    tags = store.client.get_registered_model(name).tags
    assert all(len(v) <= MAX_CHARS for k, v in tags.items() if k.startswith("alias_history."))
    assert list((tmp_path / "cache" / "mnist-mlops").glob("promote-*.lock"))
