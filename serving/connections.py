"""Deadlines for request headers and for idle kept-alive connections, in uvicorn's protocol.

uvicorn (0.54, h11) arms its keep-alive timer only after a response and cancels it on the
first byte received, so a client that connects and sends nothing, or half a request line,
holds its socket forever; no ASGI app ever sees such a connection. The deadline must
live in uvicorn's protocol: :class:`HeaderDeadlineProtocol` is uvicorn's own h11
protocol plus one timer per connection:

- from connect, and from the first byte of each later request, complete headers within
  ``header_timeout_s``; a connection that sent part of a request gets
  ``408 {"error": ...}``, a silent new one is just closed;
- between requests on a kept-alive connection, ``keepalive_s`` of silence, then it
  is closed. It must be longer than a client's own idle expiry (httpx 5 s, aiohttp 15 s,
  a proxy's 60 s): a server that hangs up first races the client's reuse of the same
  connection, and the request sent into that close is lost as a reset (seen in the soak
  test as ``ReadError``s when both sides used 5 s). nginx's default is the same 75 s.

Body deadlines live in :mod:`serving.front` (ASGI); the defaults of all three in
:mod:`serving.settings`.

BentoML builds uvicorn's ``Config`` itself and has no protocol option, so
:class:`HeaderDeadlines`, an ASGI middleware the service adds, hands the protocol (and the
keep-alive time, for uvicorn's own timer too) to the server at start-up: uvicorn runs the
ASGI lifespan before it opens its socket and reads ``config.http_protocol_class`` for each
new connection. Nothing changes at import.
"""

from __future__ import annotations

import asyncio
import json
import logging

import h11
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from serving.errors import REASONS
from serving.metrics import service_metrics

logger = logging.getLogger(__name__)


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with ``header_timeout_s`` for request headers and
    ``keepalive_s`` for silence between requests."""

    header_timeout_s: float  # set by HeaderDeadlines' subclass, from the settings
    keepalive_s: float
    _header_timer: asyncio.TimerHandle | None = None
    _awaiting_headers = False  # the header deadline runs, not the keep-alive one

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s, awaiting_headers=True)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # headers are in: the front takes over
            self._disarm()
        elif not self._awaiting_headers and self.conn.trailing_data[0]:
            self._arm(self.header_timeout_s, awaiting_headers=True)  # a request has begun

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            # Pipelined bytes already here start the next request's header deadline.
            begun = bool(self.conn.trailing_data[0])
            self._arm(self.header_timeout_s if begun else self.keepalive_s, awaiting_headers=begun)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, awaiting_headers: bool) -> None:
        self._disarm()
        self._awaiting_headers = awaiting_headers
        self._header_timer = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a request arrived: say why we hang up
            self.transport.write(_timeout_response(self.header_timeout_s))
            service_metrics().reject(REASONS[408])
        self.transport.close()


class HeaderDeadlines:
    """ASGI middleware that acts once, at start-up: the server's connections get the deadline.

    Every other message passes straight through.
    """

    def __init__(self, app: ASGIApp, timeout_s: float, keepalive_s: float) -> None:
        self.app = app
        self.protocol = type(
            HeaderDeadlineProtocol.__name__,
            (HeaderDeadlineProtocol,),
            {"header_timeout_s": timeout_s, "keepalive_s": keepalive_s},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self._install(receive)
        await self.app(scope, receive, send)

    def _install(self, receive: Receive) -> None:
        config = uvicorn_config(receive)
        if config is None:
            logger.warning("not served by uvicorn: no deadline for request headers")
            return
        config.http_protocol_class = self.protocol
        config.timeout_keep_alive = self.protocol.keepalive_s  # uvicorn's own timer: the same
        logger.info(
            "request headers deadline: %s s; kept-alive connections idle for %s s are closed",
            self.protocol.header_timeout_s,
            self.protocol.keepalive_s,
        )


def uvicorn_config(receive: Receive) -> uvicorn.Config | None:
    """The server's ``Config``, from the lifespan's ``receive`` (a method of the object
    holding it); None when not served by uvicorn."""
    config = getattr(getattr(receive, "__self__", None), "config", None)
    return config if isinstance(config, uvicorn.Config) else None


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps({"error": f"the request headers did not arrive within {seconds} s"})
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return (head + body).encode()
