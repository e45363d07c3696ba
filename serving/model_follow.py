"""Follow a registry alias: each worker swaps in the version it names, once it has checked it.

With ``MNIST_MODEL_URI=models:/mnist-mlp@champion`` every worker runs a :class:`Follower`,
a background thread that asks the registry every ``MNIST_MODEL_POLL_S`` seconds which
version the alias names. On a move it fetches that version
(:func:`mnist_mlops.registry.served.fetch`: the artifact and its card, SHA-256 checked
against the card and the registry), opens it in ONNX Runtime (checked again against its
card), and has it answer the smoke set (:class:`SmokeSet`: MNIST test digits with their
labels); only a version that passes all of it is handed to ``install``, which swaps it in
as one reference assignment. A version that fails any check is refused: the old model
keeps serving, the refusal is logged once and counted on ``/metrics``, and the next move
is tried again (the refused version itself, quietly, every ``RETRY_REFUSED_POLLS`` polls:
a fetch can fail for a passing reason). The registry being slow or down costs predictions
nothing: every registry call happens in this thread, and :mod:`mnist_mlops.registry.served`
bounds MLflow's HTTP retries, so a poll gives up within seconds rather than minutes.

    follower = Follower(settings, "models:/mnist-mlp@champion", "champion", cache,
                        smoke, install=swap, current=lambda: serving.champion)
    follower.check()   # one poll, here and now (start-up, tests)
    follower.start()   # then every poll_s in a daemon thread
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mnist_mlops.inference.serving_choice import resolve_artifact
from serving.model_loading import LoadedModel, announce, load_model
from serving.smoke_set import Refused, SmokeSet

if TYPE_CHECKING:
    from mnist_mlops.registry.served import ServedVersion

logger = logging.getLogger(__name__)

OUTCOMES = ("switched", "refused")  # what a move ends in, as /metrics counts it
# A refused version is fetched and checked again after this many polls (quietly: it was
# logged and counted once), so a fetch that failed for a passing reason (the artifact
# store down a moment) does not leave a worker on the old model until the next move.
RETRY_REFUSED_POLLS = 30


class FollowCounters(Protocol):
    """Where a follower reports (prometheus, :func:`serving.metrics.follow_metrics`)."""

    def moved(self, role: str, outcome: str) -> None: ...

    def poll_failed(self, role: str) -> None: ...

    def serving(self, model: LoadedModel | None, replaced: LoadedModel | None) -> None: ...


class Follower:
    """Follows one alias (``model_uri``) for one role; see the module docstring."""

    def __init__(
        self,
        tracking_uri: str,
        model_uri: str,
        role: str,
        cache: Path,
        smoke: SmokeSet | None,
        install: Callable[[LoadedModel | None], None],
        current: Callable[[], LoadedModel | None],
        counters: FollowCounters,
        poll_s: float,
        retry_polls: int = RETRY_REFUSED_POLLS,
    ) -> None:
        self.tracking_uri, self.model_uri, self.role = tracking_uri, model_uri, role
        self.cache = cache
        self.smoke = smoke
        self._install, self._current = install, current
        self._counters = counters
        self.poll_s = poll_s
        self._refused: tuple[str, str] | None = None  # the last version refused ...
        self._since_refused = 0  # ... polls ago: retried after retry_polls
        self._retry_polls = retry_polls
        self._unreachable = False  # logged once per episode
        self.problem = ""  # why the last poll did not end serving the alias's version
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Poll every ``poll_s`` in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name=f"follow-{self.role}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception:  # a bug here must not end the following
                logger.exception("following %s failed; trying again next poll", self.model_uri)

    def check(self) -> str:
        """One poll: "unchanged", "switched", "refused" (now or before), "unreachable", or
        "retired" (a challenger whose alias was removed)."""
        from mnist_mlops.registry.served import AliasNotSet, resolve

        try:
            served = resolve(self.tracking_uri, self.model_uri)
        except Exception as exc:  # RegistryError, or the network under it
            if isinstance(exc, AliasNotSet) and self.role != "champion":
                return self._retire()
            self._counters.poll_failed(self.role)
            if not self._unreachable:
                self._unreachable = True
                logger.error(
                    "cannot follow %s: %s; serving %s meanwhile, counted on /metrics "
                    "(mnist_model_poll_failures_total) and not logged again until it works",
                    self.model_uri, _line(exc), _name(self._current()),
                )  # fmt: skip
            self.problem = f"cannot follow {self.model_uri}: {_line(exc)}"
            return "unreachable"
        if self._unreachable:
            self._unreachable = False
            logger.warning("registry reachable again: following %s", self.model_uri)
        key = (served.version, served.sha256)
        now = self._current()
        if now is not None and (now.registry_version, now.card.sha256) == key:
            self.problem = ""
            return "unchanged"
        if key == self._refused:
            self._since_refused += 1
            if self._since_refused < self._retry_polls:
                return "refused"
        try:
            model = self._load(served)
        except Exception as exc:
            again, self._refused, self._since_refused = key == self._refused, key, 0
            self.problem = f"refused {served.model_name} v{served.version}: {_line(exc)}"
            if again:  # logged and counted when first refused
                return "refused"
            self._counters.moved(self.role, "refused")
            logger.error(
                "refused %s v%s (%s): %s; still serving %s, counted on /metrics "
                "(mnist_model_switches_total{outcome=\"refused\"})",
                served.model_name, served.version, self.model_uri, _line(exc), _name(now),
            )  # fmt: skip
            return "refused"
        self._install(model)
        self.problem = ""
        self._counters.moved(self.role, "switched")
        self._counters.serving(model, now)
        announce(model, f"{served.model_name} v{served.version}",
                 f"{self.model_uri}{'' if now is None else f' (was {_name(now)})'}")  # fmt: skip
        self._tidy(keep=self._folder(served))
        return "switched"

    def _retire(self) -> str:
        """The challenger alias names no version (removed, or promoted to champion): stop
        scoring with the old one, so removing the alias ends a shadow or a canary. Never for
        the champion: without one the service would have nothing to answer with."""
        self.problem, self._unreachable, self._refused = "", False, None
        now = self._current()
        if now is None:
            return "unchanged"
        self._install(None)
        self._counters.serving(None, now)
        logger.warning("%s names no version any more: %s %s no longer scores requests",
                       self.model_uri, self.role, _name(now))  # fmt: skip
        self._tidy(keep=None)
        return "retired"

    def _load(self, served: ServedVersion) -> LoadedModel:
        """Fetch, open and smoke-test one version; :class:`Refused` (or the registry's
        error) when any check fails."""
        from mnist_mlops.registry.served import fetch

        folder = self._folder(served)
        shutil.rmtree(folder, ignore_errors=True)  # never a half-fetched earlier try
        choice = fetch(self.tracking_uri, served, folder)
        model = load_model(
            resolve_artifact(choice),
            source=f"{self.model_uri} v{served.version}",
            role=self.role,
            registry_version=str(served.version),
        )
        if model.card.sha256 != served.sha256:
            raise Refused(f"its artifact has SHA-256 {model.card.sha256}, the registry says "
                          f"{served.sha256}")  # fmt: skip
        if self.smoke is None:
            raise Refused("no smoke set to check it on; set MNIST_SMOKE_PATH")
        self.smoke.check(model)
        return model

    def _folder(self, served: ServedVersion) -> Path:
        return self.cache / f"{self.role}-v{served.version}"

    def _tidy(self, keep: Path | None) -> None:
        """Delete the fetched versions this role no longer serves (the session holds the
        model in memory: its file is not needed once opened)."""
        for folder in self.cache.glob(f"{self.role}-v*"):
            if folder != keep:
                shutil.rmtree(folder, ignore_errors=True)


def _name(model: LoadedModel | None) -> str:
    return "nothing" if model is None else f"{model.source} ({model.version})"


def _line(exc: BaseException) -> str:
    """An exception as one line (MLflow's messages can span several)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."
