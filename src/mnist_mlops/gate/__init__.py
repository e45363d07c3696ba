"""The field stage's judgement: every artifact of an export scored where users are, the one
to serve chosen (:mod:`.choice`), and the champion gate's decision (:mod:`.decide`) run on
what will be served (:mod:`.stage`).

It sits above ``evaluation`` (scoring through the serving path) and ``registry`` (versions
and the alias moves) so that neither has to import the other: the reference and drift
stages, which read the evaluation code, do not rerun when the registry code changes, and
the registry, which services read, carries no scoring code.
"""
