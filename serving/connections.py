"""A deadline for request headers, which uvicorn (0.54, h11) does not have.

uvicorn arms its keep-alive timer only after a response and cancels it on the first
byte received, so a client that connects and sends nothing, or half a request line,
holds its socket forever. :class:`HeaderDeadlineProtocol` is uvicorn's own h11
protocol plus one timer per connection: armed when the connection opens and again
whenever a response completes, disarmed once full request headers arrived. When it
fires, a connection that sent part of a request gets ``408 {"error": ...}``; either
way it is closed. Body deadlines live in :mod:`serving.guard` (ASGI).

BentoML builds the ``uvicorn.Config`` itself and exposes no protocol option, so
:func:`install` registers the class under uvicorn's ``"auto"`` protocol name; it has
to run in the worker before uvicorn loads its config, i.e. when the service module is
imported (see ``serving/service.py``).
"""

from __future__ import annotations

import asyncio
import json

import h11
import uvicorn.config
from uvicorn.protocols.http.h11_impl import H11Protocol

from serving.errors import REASONS
from serving.metrics import service_metrics

HEADER_TIMEOUT_S = 5.0  # from connect (or the last response) to complete request headers


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with :data:`HEADER_TIMEOUT_S` for request headers."""

    header_timeout_s = HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # headers are in: the guard takes over
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._expire)

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


def _timeout_response(seconds: float) -> bytes:
    body = json.dumps({"error": f"the request headers did not arrive within {seconds} s"})
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return (head + body).encode()


def install(header_timeout_s: float = HEADER_TIMEOUT_S) -> None:
    """Make uvicorn's default (``"auto"``) HTTP protocol :class:`HeaderDeadlineProtocol`."""
    HeaderDeadlineProtocol.header_timeout_s = header_timeout_s
    uvicorn.config.HTTP_PROTOCOLS["auto"] = f"{__name__}:{HeaderDeadlineProtocol.__name__}"
    uvicorn.config.HTTP_PROTOCOLS["h11"] = f"{__name__}:{HeaderDeadlineProtocol.__name__}"
