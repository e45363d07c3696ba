"""The Model Registry as the one source of truth for what serves: each export a version
(:mod:`.versions`), the ``champion`` and ``challenger`` aliases moved only under the
promotion lock and each move recorded in the registry itself (:mod:`.aliases`,
:mod:`.history`), and one way to reach it that fails in one line (:mod:`.connect`).

Serving-side code reads it too, so it imports MLflow's client API only, inside functions,
and nothing of the training side: the champion gate that decides the gate's moves lives in
:mod:`mnist_mlops.gate`.
"""
