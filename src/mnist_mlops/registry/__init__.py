"""The Model Registry as the one source of truth for what serves.

Each export is a version (:mod:`.versions`); the ``champion`` and ``challenger`` aliases
move only under the promotion lock (across machines too, with a PostgreSQL advisory lock:
:mod:`.shared_lock`), and each move (the champion gate, a person's
``promote``, a ``rollback``) is recorded in the registry itself (:mod:`.aliases`,
:mod:`.history`). Everything that serves (the ``champion`` stage that the Bento and the
image are built from, ``make serve``, a service following ``MNIST_MODEL_URI``) resolves an
alias or a version and fetches the file the gate judged, hash-checked against its card
(:mod:`.served`, :mod:`.deployment`). One way to reach the registry fails in one line
(:mod:`.connect`). On a server with authentication, who may move the aliases is a grant
per user (:mod:`.access`).

Serving-side code reads it, so this room imports MLflow's client API only, inside
functions (``mlflow-skinny`` against an ``http://`` server is enough), and nothing of the
training side: the gate that decides the moves lives in :mod:`mnist_mlops.gate`.
"""
