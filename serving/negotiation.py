"""Which answer a client asked for: the media type its ``Accept`` header prefers.

Only /predict_npy has two answers (JSON, or an ``.npy`` file); its parser
(:mod:`serving.routes`) asks :func:`preferred_answer` which one to give.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Scope


def preferred_answer(scope: Scope, answers: tuple[str, ...]) -> str:
    """The media type of ``answers`` that the ``Accept`` header rates highest.

    Ties, wildcards and a header naming none of them go to ``answers[0]`` (JSON): a client
    gets the binary answer only by asking for it, and an odd Accept header never turns a
    request into an error (RFC 9110 lets a server ignore it).
    """
    rated = []
    for part in Headers(scope=scope).get("accept", "").split(","):
        kind, *params = (p.strip().lower() for p in part.split(";"))
        if kind in answers and (quality := _quality(params)) > 0:
            rated.append((quality, -answers.index(kind), kind))  # a tie: the earlier answer
    return max(rated)[2] if rated else answers[0]


def _quality(params: list[str]) -> float:
    """An Accept entry's ``q`` (1 when absent; a malformed one counts as 0, refused)."""
    for param in params:
        key, _, value = param.partition("=")
        if key.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0
