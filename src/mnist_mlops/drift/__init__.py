"""Is the service still seeing what the model was gated on? Offline, never in the service.

:mod:`.reference` builds "normal" through the serving path (the reference stage),
:mod:`.window` reads a time window of the inference log, :mod:`.report` compares the two
with Evidently and decides. ``python -m pipeline.monitor`` runs it.

Is the challenger better than the champion? :mod:`.pairs` reads the requests both scored
(shadow or canary), :mod:`.challenger` compares them on the users' corrections and
decides, :mod:`.challenger_report` writes the page. ``python -m pipeline.compare`` runs it.
"""
