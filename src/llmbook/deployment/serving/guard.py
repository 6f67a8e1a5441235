"""Connection-level guards for the API (chapter 15): no idle socket can take the service down.

uvicorn reads a request's headers and body for as long as a client cares to send them, and
its ``limit_concurrency`` counts *connections*, idle ones included: 120 sockets that sent a
request line and stopped made every request, health probes included, answer 503. This module
swaps uvicorn's HTTP protocol for :class:`GuardedH11Protocol`, which

* closes a connection whose request headers are not complete ``header_timeout`` seconds after
  it opened (slowloris), and one whose request body is not complete ``body_timeout`` seconds
  after its headers (the app sees a disconnect);
* refuses connections beyond ``max_connections`` at once (idle ones are cheap, but not free);
* answers ``431 Request Header Fields Too Large`` to request headers over ``max_header_bytes``
  (checked as bytes arrive, before h11 parses them; uvicorn alone accepts any that arrive in
  one piece and answers 400 to the rest);

so bounding requests in flight is left to the app (its queue answers 503 when full), where an
idle socket does not count.  Each refusal is reported by its reason (``capacity``,
``header_timeout``, ``body_timeout``, ``header_size``) to the ``refused`` callback, which
``llmbook serve`` points at ``llmbook_connections_refused_total``: no request the app never
sees goes uncounted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ConnectionLimits:
    """Seconds a client gets for its headers and for its body; connections open at once."""

    header_timeout: float = 5.0
    body_timeout: float = 15.0
    max_connections: int = 4096
    max_header_bytes: int = 8192


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and a connection cap."""

    limits = ConnectionLimits()
    refused: Callable[[str], None] = staticmethod(lambda reason: None)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.refused("capacity")
            transport.close()  # connection_lost removes it from the set
            return
        self._deadline = self.loop.call_later(self.limits.header_timeout, self._too_slow,
                                              h11.IDLE)

    def handle_events(self) -> None:
        previous = self.cycle
        super().handle_events()
        if self.cycle is not previous:  # a request's headers are complete: now its body
            self._cancel_deadline()
            self._deadline = self.loop.call_later(self.limits.body_timeout, self._too_slow,
                                                  h11.SEND_BODY)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # still reading a request's headers
            pending = self.conn.trailing_data[0] + data
            end = pending.find(b"\r\n\r\n")
            if (end if end >= 0 else len(pending)) > self.limits.max_header_bytes:
                return self._refuse_headers()
        super().data_received(data)

    def _refuse_headers(self) -> None:
        """431 and close (written raw: h11 sends no response before it has read a request)."""
        self.refused("header_size")
        body = f"request headers over {self.limits.max_header_bytes} bytes\n".encode()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                             b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
        self.transport.close()

    def on_response_complete(self) -> None:
        self._cancel_deadline()  # between requests uvicorn's keep-alive timeout applies
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _cancel_deadline(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _too_slow(self, stuck_in) -> None:
        """Close the connection if the client is still where it was when the clock started."""
        self._deadline = None
        if self.conn.their_state is stuck_in and not self.transport.is_closing():
            self.refused("header_timeout" if stuck_in is h11.IDLE else "body_timeout")
            self.transport.close()


def guarded_protocol(limits: ConnectionLimits, refused: Callable[[str], None] | None = None
                     ) -> type[GuardedH11Protocol]:
    """:class:`GuardedH11Protocol` with ``limits`` (uvicorn takes a class, not an instance),
    calling ``refused(reason)`` at each refusal; pass
    ``h11_max_incomplete_event_size=limits.max_header_bytes`` to uvicorn with it."""
    attributes = {"limits": limits}
    if refused is not None:
        attributes["refused"] = staticmethod(refused)
    return type("GuardedH11Protocol", (GuardedH11Protocol,), attributes)
