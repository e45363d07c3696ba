"""The Model Registry as the one source of truth for what serves.

The champion gate (the field stage), a person's ``promote`` and a ``rollback`` move the
registry's aliases; everything that serves (the ``champion`` stage that the Bento and
the image are built from, ``make serve``, a service following ``MNIST_MODEL_URI``)
resolves an alias or a version here and fetches the file the gate judged, hash-checked
against its card. This room talks to MLflow through its client API only, imported
inside functions, so ``mlflow-skinny`` against an ``http://`` server is enough and
importing it costs nothing.
"""
