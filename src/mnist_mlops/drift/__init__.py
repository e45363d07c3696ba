"""Is the service still seeing what the model was gated on? Offline, never in the service.

:mod:`.reference` builds "normal" through the serving path (the reference stage),
:mod:`.window` reads a time window of the inference log, :mod:`.report` compares the two
with Evidently and decides. ``python -m pipeline.monitor`` runs it.
"""
