"""What answers in a worker: the champion, maybe a challenger beside it, swapped whole.

:class:`ServedModels` holds one immutable :class:`ModelPair`; the followers
(:mod:`serving.model_follow`) replace it with one reference assignment, and a request reads
it once (:func:`score`), so the answer and its log record name the model that computed
them even when a switch lands mid-request. ``MNIST_CHALLENGER`` says what the challenger
(the registry's ``challenger`` alias, followed like the champion) does:

    off     it is not loaded
    shadow  it scores every request too; the champion answers; the log records both
    canary  MNIST_CANARY_SHARE of requests (a stable hash of the MNIST_CANARY_KEY_HEADER
            header's value when a request has one, else of its request id) are answered
            by the challenger; both score every request and the log records both

The model that does not answer scores in the inference log's writer thread, a whole
writer batch in one call (a second call per request would cost as much as the answer's
own); with the log off (MNIST_INFERENCE_LOG=off) nothing reads its scores and it is not
called.

Settings: ``MNIST_MODEL_POLL_S``, ``MNIST_CHALLENGER``, ``MNIST_CANARY_*``,
``MNIST_SMOKE_*`` in :class:`serving.settings.ServiceSettings`; which model serves:
:mod:`serving.model_loading`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mnist_mlops.core.errors import UserError
from serving.model_follow import FollowCounters, Follower
from serving.model_loading import (
    MODEL_URI_ENV,
    TRACKING_URI_ENV,
    LoadedModel,
    load_file_model,
    model_source,
    packaged_model_folder,
)
from serving.settings import ENV, ServiceSettings
from serving.smoke_set import SmokeSet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPair:
    """The models answering now; replaced whole, never changed in place."""

    champion: LoadedModel | None = None
    challenger: LoadedModel | None = None


@dataclass(frozen=True)
class Scored:
    """One request's answer: the model that answered and its scores, and the other model
    when one is on. The other model scores the request later, in the inference log's
    writer, batched with other requests (records.score_shadows): never on the request path.
    """

    answered: LoadedModel
    probabilities: np.ndarray  # (N, 10), the answering model's
    shadow: LoadedModel | None = None


def canary_answers(key: str, share: float) -> bool:
    """Whether the challenger answers the request keyed ``key``: the same key always gets
    the same model (a hash, not a coin), and ``share`` of all keys go to the challenger."""
    digest = hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


def score(pair: ModelPair, batch: np.ndarray, mode: str, share: float, key: str) -> Scored:
    """Score ``batch`` (N, 28, 28) as ``mode`` says (module docstring); ``key`` picks the
    canary's answering model. ``pair`` must have a champion."""
    champion, challenger = pair.champion, pair.challenger
    assert champion is not None  # the service answers 503 before this without one
    if mode == "off" or challenger is None:
        return Scored(champion, champion.probabilities(batch))
    if mode == "canary" and canary_answers(key, share):
        return Scored(challenger, challenger.probabilities(batch), champion)
    return Scored(champion, champion.probabilities(batch), challenger)


def challenger_uri(model_uri: str) -> str:
    """``models:/name@champion`` (or ``models:/name/3``) -> ``models:/name@challenger``."""
    name = model_uri.removeprefix("models:/").split("@")[0].split("/")[0]
    return f"models:/{name}@challenger"


class ServedModels:
    """This worker's models and the followers that move them (see the module docstring)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.pair = ModelPair()  # read once per request; replaced whole by install()
        self._lock = threading.Lock()  # two followers: one read-modify-write at a time
        self._followers: list[Follower] = []
        self._cache: Path | None = None
        self._problem = ""

    @property
    def problem(self) -> str:
        """Why there is no champion (empty while one serves)."""
        follower = next((f for f in self._followers if f.role == "champion"), None)
        return (follower.problem if follower else "") or self._problem

    def score(self, batch: np.ndarray, key: str) -> Scored:
        """:func:`score` with the models serving now (read once) and the settings' mode."""
        mode, share = self.settings.challenger, self.settings.canary_share
        return score(self.pair, batch, mode, share, key)

    def readiness(self) -> dict[str, Any]:
        """``/readyz``'s body: the champion's identity, and the challenger's when one is on."""
        pair = self.pair
        assert pair.champion is not None  # asked only once the service said it is ready
        body: dict[str, Any] = {"status": "ready", **pair.champion.identity()}
        if self.settings.challenger != "off":
            body["challenger_mode"] = self.settings.challenger
            body["challenger"] = pair.challenger.identity() if pair.challenger else None
        return body

    def install(self, role: str, model: LoadedModel | None) -> None:
        with self._lock:
            self.pair = replace(self.pair, **{role: model})

    @classmethod
    def start(cls, settings: ServiceSettings, counters: FollowCounters) -> ServedModels:
        """Load what the environment points at; a registry source is followed from here
        on (the first poll runs now, so the first answer comes from the alias's version).
        Never raises: what went wrong is :attr:`problem`, and the service answers 503."""
        served = cls(settings)
        try:
            served._load(counters)
        except Exception as exc:  # checksum, missing file, ONNX Runtime refusing it
            served._problem = f"model not loaded: {exc}"
        if served.pair.champion is None:
            logger.error("ModelLoadError: %s", served.problem)
        return served

    def _load(self, counters: FollowCounters) -> None:
        source = model_source()
        if source.uri is None:
            if self.settings.challenger != "off":
                mode = f"{ENV['challenger']}={self.settings.challenger}"  # the variable
                raise UserError(f"{mode} follows the registry's challenger alias: "
                                f"set {MODEL_URI_ENV} too")  # fmt: skip
            champion = load_file_model(source)
            counters.serving(champion, None)
            self.install("champion", champion)
            return
        tracking_uri = os.environ.get(TRACKING_URI_ENV)
        if not tracking_uri:
            raise UserError(f"{MODEL_URI_ENV}={source.uri} needs {TRACKING_URI_ENV}: set it "
                            "to the registry (http://host:5000 or sqlite:///...)")  # fmt: skip
        smoke_path = SmokeSet.default_path(self.settings.smoke_path, packaged_model_folder())
        smoke = SmokeSet.read(smoke_path, self.settings.smoke_min_accuracy)
        self._cache = Path(tempfile.mkdtemp(prefix="mnist-models-"))
        uris = {"champion": source.uri}
        if self.settings.challenger != "off":
            uris["challenger"] = challenger_uri(source.uri)
        for role, uri in uris.items():
            follower = Follower(tracking_uri, uri, role, self._cache, smoke,
                                install=lambda model, role=role: self.install(role, model),
                                current=lambda role=role: getattr(self.pair, role),
                                counters=counters, poll_s=self.settings.poll_s)  # fmt: skip
            follower.check()  # the first load, before the first request
            follower.start()
            self._followers.append(follower)

    def stop(self) -> None:
        """Stop following and delete the fetched versions."""
        for follower in self._followers:
            follower.stop()
        if self._cache is not None:
            shutil.rmtree(self._cache, ignore_errors=True)
