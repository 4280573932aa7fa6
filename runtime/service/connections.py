"""Read deadlines for HTTP clients: a connection that is slow to send its request is closed.

Uvicorn bounds idle keep-alive connections (`timeout_keep_alive`) and, with
`limit_concurrency`, answers 503 once a process holds that many connections, but it waits
forever for a request's headers or body. A client that opens a connection and sends half a
request line ("slow loris") holds a file descriptor for as long as it likes; a thousand of
them exhaust the process (issue 17, defect 5).

`read_deadline_protocol` builds uvicorn's httptools protocol with two deadlines:

- headers: from the moment the connection is accepted (or the previous response finished)
  until the request's headers are complete;
- body: from the end of the headers until the whole body has arrived. A total deadline, not an
  idle time between chunks: a client dripping one byte every few seconds is cut off too.

When one passes, the client gets `408 Request Timeout` (unless a response has already begun)
and the connection is closed; the application sees a disconnect. No timer runs while the
application works on a request whose body has arrived, so slow handlers are not affected.

The same protocol sends a response's header block and its body in one write (`_Joined`):
uvicorn writes them apart, two sends and two segments for every small answer, a sixth of the
manager's CPU on its task submit under load.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from typing import Any, ClassVar, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["ReadPhase", "read_deadline_protocol"]

_log = logging.getLogger(__name__)

_REQUEST_TIMEOUT: Final = b"Request Timeout"


class ReadPhase(StrEnum):
    HEADERS = "headers"
    BODY = "body"


class _Joined:
    """A connection's transport as its responses write to it: the writes of one turn of the
    event loop leave together. A write with nothing held is held until the next write (a
    response's body after its header block: joined, sent at once) or the end of the turn (a
    streamed body's first part comes later, a `100 Continue` waits for nothing), so nothing
    waits longer than the turn it was written in, and the order of writes is kept."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        self._held = None
        self.transport.write(held + data)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self.transport.is_closing():
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _DeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a deadline on reading each request's headers and body."""

    header_timeout_s: ClassVar[float]
    body_timeout_s: ClassVar[float]
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self, phase: ReadPhase) -> None:
        self._disarm()
        delay = self.header_timeout_s if phase is ReadPhase.HEADERS else self.body_timeout_s
        self._deadline = self.loop.call_later(delay, self._expired, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, phase: ReadPhase) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        _log.debug("closing %s: request %s not read in time", self.client, phase)
        cycle = self.cycle
        answered = cycle is not None and cycle.response_started and phase is ReadPhase.BODY
        if cycle is not None and phase is ReadPhase.BODY:
            # The application is waiting in receive(): it gets a disconnect, and anything it
            # still sends is dropped rather than written after our 408.
            cycle.disconnected = True
            cycle.message_event.set()
        if not answered:
            self.transport.write(self._timeout_response())
        self.transport.close()

    def _timeout_response(self) -> bytes:
        lines = [b"HTTP/1.1 408 Request Timeout"]
        lines += [name + b": " + value for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: text/plain; charset=utf-8",
            b"content-length: " + str(len(_REQUEST_TIMEOUT)).encode("ascii"),
            b"connection: close",
        ]
        return b"\r\n".join(lines) + b"\r\n\r\n" + _REQUEST_TIMEOUT

    # uvicorn's callbacks, each extended with the deadline it starts or ends.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._joined = _Joined(transport, self.loop)
        self._arm(ReadPhase.HEADERS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is not None:  # the request's cycle (an upgrade makes none)
            self.cycle.transport = self._joined  # type: ignore[assignment]
        self._arm(ReadPhase.BODY)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete:
            # Answered before the body was read (a refusal): the next request's clock starts.
            self._arm(ReadPhase.HEADERS)
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        # Idle until the next request (pipelined requests already read are not waited for).
        waiting = not self.pipeline
        super().on_response_complete()
        if waiting and not self.transport.is_closing():
            self._arm(ReadPhase.HEADERS)


def read_deadline_protocol(
    header_timeout_s: float, body_timeout_s: float
) -> type[HttpToolsProtocol]:
    """Uvicorn's `http=` protocol class with these read deadlines, in seconds."""
    if header_timeout_s <= 0 or body_timeout_s <= 0:
        raise ValueError("read deadlines must be positive")

    class ReadDeadlineProtocol(_DeadlineProtocol):
        pass

    ReadDeadlineProtocol.header_timeout_s = header_timeout_s
    ReadDeadlineProtocol.body_timeout_s = body_timeout_s
    return ReadDeadlineProtocol
