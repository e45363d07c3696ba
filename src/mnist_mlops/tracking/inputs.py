"""Attach dataset inputs to a run, safely when several runs log the same data at once.

MLflow's ``log_inputs`` looks a dataset up by (experiment, name, digest) and inserts
it when missing, in two steps. Two runs that log the same new dataset at the same
moment (two queued DVC experiments on one server, two scoring jobs on one file)
can both miss it and both insert; PostgreSQL then refuses the second insert on the
``datasets`` primary key and the second run's stage fails, although nothing is
wrong. The row the other run committed is exactly the one we wanted, so asking
again links it: this module retries only that refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

# One retry always suffices (the conflicting row is committed when the insert is
# refused); the third try covers a run that logs two new datasets racing two runs.
ATTEMPTS = 3
# How the stores word the refusal: PostgreSQL and MySQL, then SQLite.
_CONFLICT_WORDS = ("duplicate key", "duplicate entry", "unique constraint failed")


def is_dataset_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is a store refusing a dataset row another writer just inserted."""
    text = str(exc).lower()
    return "dataset" in text and any(word in text for word in _CONFLICT_WORDS)


def log_inputs(client: MlflowClient, run_id: str, inputs: Sequence[DatasetInput]) -> None:
    """``client.log_inputs(run_id, inputs)``, retried when a concurrent run inserted a dataset."""
    from mlflow.exceptions import MlflowException

    for attempt in range(1, ATTEMPTS + 1):
        try:
            client.log_inputs(run_id, datasets=list(inputs))
            return
        except MlflowException as exc:
            if attempt == ATTEMPTS or not is_dataset_conflict(exc):
                raise
            # One line: the store's refusal (SQL, parameters) is noise for a handled race.
            names = ", ".join(i.dataset.name for i in inputs)
            log.info("%s: logged by a concurrent run at the same moment; linking it", names)
            log.debug("the store's refusal (try %d): %s", attempt, exc)
