"""`connect` follows the URL the platform hands a service: plain Redis, or Sentinel's master."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.settings.service import ServiceSettings
from runtime.service.redis import connect, sentinel_target
from tests.servers import free_port

PASSWORD = "sentinel-test-password-0123456789"


def _wait_for(port: int, password: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(f"AUTH {password}\r\nPING\r\n".encode())
                time.sleep(0.05)
                if b"+PONG" in conn.recv(256):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers PONG on port {port}")


def _start(argv: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _wait_for(port, PASSWORD)
    return process


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A password-protected redis-server and one Sentinel watching it (as the chart runs them):
    (redis port, sentinel port)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: run scripts/ensure-apt"
    data_port, sentinel_port = free_port(), free_port()
    data = [binary, "--bind", "127.0.0.1", "--port", str(data_port), "--save", ""]
    data += ["--requirepass", PASSWORD, "--dir", str(tmp_path)]
    conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its config: a file of its own
    conf.write_text(
        f"bind 127.0.0.1\nport {sentinel_port}\nrequirepass {PASSWORD}\n"
        f"sentinel monitor mymaster 127.0.0.1 {data_port} 1\n"
        f"sentinel auth-pass mymaster {PASSWORD}\n"
    )
    processes = [_start(data, data_port)]
    try:
        processes.append(_start([binary, str(conf), "--sentinel"], sentinel_port))
        yield data_port, sentinel_port
    finally:
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _settings(url: str, tmp_path: Path) -> ServiceSettings:
    secret = tmp_path / "redis-password"
    secret.write_text(PASSWORD + "\n")
    return ServiceSettings(port=8080, redis_url=url, redis_password_file=secret)


def test_a_sentinel_url_reaches_the_master(sentinel: tuple[int, int], tmp_path: Path) -> None:
    data_port, sentinel_port = sentinel
    settings = _settings(f"redis+sentinel://127.0.0.1:{sentinel_port}/mymaster/0", tmp_path)

    async def roundtrip() -> tuple[bytes | None, int]:
        client = connect(settings)
        try:
            await client.set("agentops:probe", "1")
            value: bytes | None = await client.get("agentops:probe")
            info = await client.info("server")
            return value, int(info["tcp_port"])
        finally:
            await client.aclose()

    value, served_by = asyncio.run(roundtrip())
    assert value == b"1"
    assert served_by == data_port, "writes go to the master Sentinel names"


def test_a_plain_url_still_connects_directly(tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: run scripts/ensure-apt"
    port = free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    argv += ["--dir", str(tmp_path)]
    process = _start([*argv, "--requirepass", PASSWORD], port)
    try:
        settings = _settings(f"redis://127.0.0.1:{port}/0", tmp_path)

        async def ping() -> bool:
            client = connect(settings)
            try:
                return bool(await client.ping())
            finally:
                await client.aclose()

        assert asyncio.run(ping())
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("path", "target"),
    [("/mymaster/0", ("mymaster", 0)), ("/mymaster", ("mymaster", 0)), ("/set/3", ("set", 3))],
)
def test_sentinel_target(path: str, target: tuple[str, int], tmp_path: Path) -> None:
    settings = _settings(f"redis+sentinel://redis.example:26379{path}", tmp_path)
    assert sentinel_target(settings.redis_url) == target


def test_a_sentinel_url_without_a_master_set_is_refused(tmp_path: Path) -> None:
    settings = _settings("redis+sentinel://redis.example:26379/", tmp_path)
    with pytest.raises(ValueError, match="master set"):
        sentinel_target(settings.redis_url)
