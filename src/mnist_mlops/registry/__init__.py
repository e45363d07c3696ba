"""The Model Registry as the one source of truth for what serves: each export a version
(:mod:`.versions`), the ``champion`` and ``challenger`` aliases moved only under the
promotion lock and each move recorded in the registry itself (:mod:`.aliases`,
:mod:`.history`), and one way to reach it that fails in one line (:mod:`.connect`).
Everything that serves (the ``champion`` stage that the Bento and the image are built from,
``make serve``, a service following ``MNIST_MODEL_URI``) resolves an alias or a version
and fetches the file the gate judged, hash-checked against its card (:mod:`.served`,
:mod:`.deployment`).

Serving-side code reads it too, so it imports MLflow's client API only, inside functions
(``mlflow-skinny`` against an ``http://`` server is enough), and nothing of the training
side: the champion gate that decides the gate's moves lives in :mod:`mnist_mlops.gate`.
"""
