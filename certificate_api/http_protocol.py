"""Uvicorn's HTTP protocol with a deadline on request headers.

Uvicorn times out an idle kept-alive connection, but not one that is still sending a
request's headers, nor a new one that sends nothing: each would hold a socket forever. Here
the headers of every request must arrive whole within `header_timeout` seconds of the
connection opening (first request) or of the request's first byte (later ones); otherwise
the connection is closed. Bodies have their own deadline, in the ASGI middleware.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes connections whose request headers come too slowly."""

    header_timeout: float = 10.0  # HEADER_TIMEOUT_SECONDS, set by certificate_api.workers
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
