"""The services' HTTP protocol sends a response's header block and body in one write, and
still sends what a streamed response or a `100 Continue` writes within the turn it was
written: uvicorn on real sockets, with the protocol `serve` installs, each connection's
writes counted at its transport."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from runtime.service.connections import read_deadline_protocol
from tests.servers import free_port

Protocol = read_deadline_protocol(5.0, 5.0)


class _Counting:
    """A transport that records each write it is given (and passes it on)."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Writes:
    def __init__(self) -> None:
        self.all: list[bytes] = []
        self.streaming = threading.Event()  # the test lets the streamed body go on

    def protocol(self) -> type[Any]:
        writes = self.all

        class Counted(Protocol):  # type: ignore[misc, valid-type]
            def connection_made(self, transport: asyncio.Transport) -> None:
                super().connection_made(_Counting(transport, writes))

        return Counted


async def _receive_all(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def _app(writes: _Writes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _receive_all(receive)
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while not writes.streaming.is_set():
                await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": b"late", "more_body": False})
            return
        answer = b"echo:" + body
        headers = [(b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


@contextmanager
def _server(writes: _Writes) -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        _app(writes), host="127.0.0.1", port=port, log_level="error", http=writes.protocol()
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        writes.streaming.set()
        server.should_exit = True
        thread.join(timeout=10)


def _read_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before {marker!r}; got {data!r}"
        data += chunk
    return data


def _request(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
    )


def test_each_response_of_a_keep_alive_connection_is_one_write() -> None:
    writes = _Writes()
    with _server(writes) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        for i in range(3):
            body = f"task {i}".encode()
            sock.sendall(_request("/tasks", body) + body)
            answer = _read_until(sock, b"echo:" + body)
            assert answer.startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert len(writes.all) == 3
    for i, write in enumerate(writes.all):
        head, _, body = write.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 202") and body == f"echo:task {i}".encode()


def test_a_streamed_response_sends_its_header_block_before_its_body_exists() -> None:
    writes = _Writes()
    with _server(writes) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request("/stream", b""))
        head = _read_until(sock, b"\r\n\r\n")  # the app has not written its body yet
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        writes.streaming.set()
        assert b"late" in _read_until(sock, b"0\r\n\r\n")


def test_a_100_continue_is_sent_while_the_client_waits_for_it() -> None:
    writes = _Writes()
    with _server(writes) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request("/tasks", b"held back", b"expect: 100-continue\r\n"))
        assert _read_until(sock, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"held back")
        assert b"echo:held back" in _read_until(sock, b"echo:held back")
