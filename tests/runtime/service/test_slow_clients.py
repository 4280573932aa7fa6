"""Slow clients against a real service process (the manager under `agentops serve`, real
sockets): half-sent headers and bodies are cut off after their deadline and the process lets
go of the file descriptors, normal requests are served meanwhile, and connections over the
cap get 503 (issue 17, defect 5)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.runtime.processes import ServiceProcess, Tokens, manager_env, running
from tests.servers import RedisServer, redis_server
from tests.waiting import eventually

SLOW = 200  # connections a slow-loris client holds open
DEADLINE_S = 1.0


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


def _manager(redis: RedisServer, tmp_path: Path, **settings: object) -> ServiceProcess:
    tokens = Tokens.create(tmp_path / "tokens")
    env = manager_env(redis.url, tokens, ["coder"], instance_id="manager-0", **settings)
    return ServiceProcess("manager", env, tmp_path / "manager.log")


def _fds(service: ServiceProcess) -> int:
    assert service.process is not None
    return len(os.listdir(f"/proc/{service.process.pid}/fd"))


@contextmanager
def _connections(
    service: ServiceProcess, count: int, first_bytes: bytes
) -> Iterator[list[socket.socket]]:
    """`count` connections that each sent `first_bytes` of a request and then nothing."""
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", service.port)))
            sock.sendall(first_bytes)
            sockets.append(sock)
        yield sockets


def _answer(sock: socket.socket, timeout: float) -> bytes:
    """All the server sends until it closes the connection (fails if it does not in time)."""
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def _healthy(service: ServiceProcess) -> None:
    assert httpx.get(service.url + "/health", timeout=5).status_code == 200


def test_half_sent_headers_are_closed_after_the_deadline_and_the_fds_go(
    redis: RedisServer, tmp_path: Path
) -> None:
    # Long enough for the test to see all of them held first.
    mgr = _manager(redis, tmp_path, header_timeout_s=5, max_connections=SLOW * 2)
    with running(mgr):
        idle = _fds(mgr)
        partial = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        with _connections(mgr, SLOW, partial) as slow:
            held = idle + SLOW * 9 // 10
            eventually("the server holds the slow connections", lambda: _fds(mgr) >= held)
            _healthy(mgr)  # served while the slow ones are held
            answers = [_answer(sock, timeout=15) for sock in slow]
            assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[0]
            eventually(
                "the server's descriptors back to idle", lambda: _fds(mgr) <= idle + 2, timeout=15
            )
        _healthy(mgr)


def test_a_body_that_stops_arriving_gets_408_and_a_close(
    redis: RedisServer, tmp_path: Path
) -> None:
    mgr = _manager(redis, tmp_path, body_timeout_s=DEADLINE_S)
    head = (
        b"POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    with running(mgr), _connections(mgr, 1, head + b'{"agent_type": "co') as (sock,):
        _healthy(mgr)
        assert _answer(sock, timeout=15).startswith(b"HTTP/1.1 408 ")


def test_a_connection_idle_before_its_request_is_closed(redis: RedisServer, tmp_path: Path) -> None:
    mgr = _manager(redis, tmp_path, header_timeout_s=DEADLINE_S)
    with running(mgr), _connections(mgr, 1, b"") as (sock,):
        assert _answer(sock, timeout=15).startswith(b"HTTP/1.1 408 ")


def test_requests_over_the_connection_cap_get_503(redis: RedisServer, tmp_path: Path) -> None:
    cap = 20
    mgr = _manager(redis, tmp_path, max_connections=cap, header_timeout_s=60)
    with running(mgr):
        with _connections(mgr, cap, b"GET /health HTTP/1.1\r\n"):
            over = httpx.get(mgr.url + "/health", timeout=5)
            assert over.status_code == 503, over.text
        eventually(
            "served again below the cap",
            lambda: httpx.get(mgr.url + "/health", timeout=5).status_code == 200,
        )
