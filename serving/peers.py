"""The address a request's connection really comes from, before uvicorn rewrites it.

uvicorn, as BentoML runs it (``proxy_headers`` on, ``FORWARDED_ALLOW_IPS`` unset: trust
127.0.0.1 and ::1), replaces an ASGI scope's ``client`` with an X-Forwarded-For address
whenever the peer is loopback, before any app sees the request. Any local process could
then name itself any client, and which proxies to believe would be uvicorn's setting,
not ``MNIST_TRUSTED_PROXIES``. So at start-up the front (:class:`serving.front.ApiFront`)
calls :func:`keep_peers`, which puts one step in front of uvicorn's whole app, as
:class:`serving.connections.HeaderDeadlines` installs its protocol (uvicorn runs the
lifespan before it accepts a connection, and each connection reads ``config.loaded_app``):
it copies the peer into the scope under :data:`PEER_KEY`, and :func:`peer_host` reads it.
What else reads ``client`` (BentoML's access log) keeps uvicorn's view.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.connections import uvicorn_config

logger = logging.getLogger(__name__)
PEER_KEY = "mnist.peer"  # the scope's key for the connection's (host, port)


def peer_host(scope: Scope) -> str:
    """The connection's peer address ("" when there is none, e.g. a Unix socket)."""
    peer = scope[PEER_KEY] if PEER_KEY in scope else scope.get("client")
    return str(peer[0]) if peer else ""


def keep_peers(receive: Receive) -> None:
    """From the lifespan's ``receive``: every later request's scope keeps its own peer."""
    config = uvicorn_config(receive)
    if config is None:
        logger.warning("not served by uvicorn: the peer is the scope's client")
        return
    if not isinstance(config.loaded_app, _RecordPeer):
        config.loaded_app = _RecordPeer(config.loaded_app)


class _RecordPeer:
    """uvicorn's app with the peer copied into each scope first."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[PEER_KEY] = scope.get("client")
        await self.app(scope, receive, send)
