"""`connect` follows the URL the platform hands a service: plain Redis, Sentinel's master, or
a Redis Cluster."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import RedisClusterException

from contracts.settings.service import ServiceSettings
from runtime.cost import keys as cost_keys
from runtime.manager import keys as k
from runtime.service.keys import slot
from runtime.service.redis import connect, sentinel_target
from tests.managed import ManagedProcess
from tests.servers import RedisClusterServers, free_port

PASSWORD = "sentinel-test-password-0123456789"


def _pong(port: int, password: str) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
        conn.sendall(f"AUTH {password}\r\nPING\r\n".encode())
        time.sleep(0.05)
        return b"+PONG" in conn.recv(256)


def _start(name: str, argv: list[str], port: int, directory: Path) -> ManagedProcess:
    """Start a password-protected redis-server or Sentinel; ready when it answers PONG."""
    return ManagedProcess(
        name, argv, directory / f"{name}.log", ready=lambda: _pong(port, PASSWORD), start_timeout=10
    ).start()


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
    processes = [_start("redis-server", data, data_port, tmp_path)]
    try:
        sentinel = [binary, str(conf), "--sentinel"]
        processes.append(_start("sentinel", sentinel, sentinel_port, tmp_path))
        yield data_port, sentinel_port
    finally:
        for process in processes:
            process.stop(signal.SIGKILL)


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
            await client.set(k.probe_key("test"), "1")
            value: bytes | None = await client.get(k.probe_key("test"))
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
    process = _start("redis-server", [*argv, "--requirepass", PASSWORD], port, tmp_path)
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
        process.stop(signal.SIGKILL)


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


_TOUCH_BOTH = "redis.call('SET', KEYS[1], '1') redis.call('SET', KEYS[2], '1') return 1"


def test_a_cluster_url_follows_the_slots_and_a_key_group_stays_in_one(
    cluster_servers: RedisClusterServers,
) -> None:
    cluster_servers.wait_ok()
    cluster_servers.flush()
    settings = ServiceSettings(port=8080, redis_url=cluster_servers.url)
    manager_keys = [k.task_key("t1"), k.DELAYED, k.inbox("a1"), k.queued_counter("coder")]
    assert len({slot(key) for key in manager_keys}) == 1
    assert slot(k.DELAYED) != slot(cost_keys.RESERVED), "the two services' groups may part"

    async def scenario() -> None:
        client = connect(settings)
        try:
            for i in range(60):
                await client.set(k.probe_key(f"instance-{i}"), "1")
            # One script over two keys of a group runs; over two groups the cluster refuses it.
            assert await client.eval(_TOUCH_BOTH, 2, k.task_key("t1"), k.DELAYED) == 1
            with pytest.raises(RedisClusterException, match="same key slot"):
                await client.eval(_TOUCH_BOTH, 2, k.task_key("t1"), cost_keys.RESERVED)
        finally:
            await client.aclose()

    asyncio.run(scenario())
    sizes = [int(cluster_servers.cli(n, "DBSIZE")) for n in cluster_servers.primaries()]
    assert len(sizes) == 3
    assert sum(sizes) == 62  # 60 probes, the task and the delayed set
    assert all(size > 0 for size in sizes), f"keys spread over every shard: {sizes}"
