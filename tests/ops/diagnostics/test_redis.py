"""The Redis probe against a real redis-server: each status, and a server that is gone."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ops.diagnostics import Check, DoctorSettings, Status
from ops.diagnostics.probes.redis import redis_checks
from tests.servers import RedisServer, free_port, redis_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as running:
        yield running


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_safe_redis_with_room_is_healthy(server: RedisServer, settings: DoctorSettings) -> None:
    client = redis.Redis.from_url(server.url)
    used = int(client.info("memory")["used_memory"])
    # maxmemory with room below the warning share; noeviction keeps queued tasks.
    client.config_set("maxmemory", str(math.ceil(used / settings.redis_memory_warning) * 4))
    client.config_set("maxmemory-policy", "noeviction")
    checks = _by_name(redis_checks(server.url, None, settings))
    assert {c.status for c in checks.values()} == {Status.HEALTHY}
    assert checks["redis.ping"].value == client.info("server")["redis_version"]
    memory = checks["redis.memory"]
    assert isinstance(memory.value, float) and 0 < memory.value < settings.redis_memory_warning


def test_no_maxmemory_warns_and_an_evicting_policy_is_critical(
    server: RedisServer, settings: DoctorSettings
) -> None:
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory", "0")
    client.config_set("maxmemory-policy", "allkeys-lru")
    checks = _by_name(redis_checks(server.url, None, settings))
    assert checks["redis.memory"].status is Status.WARNING
    assert checks["redis.eviction"].status is Status.CRITICAL
    assert checks["redis.eviction"].value == "allkeys-lru"
    unbounded = checks["redis.memory_days_left"]
    assert (unbounded.status, unbounded.value) == (Status.WARNING, None)
    assert "unbounded" in unbounded.detail


def test_memory_growing_between_samples_gives_the_days_left(
    server: RedisServer, settings: DoctorSettings
) -> None:
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory-policy", "noeviction")
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used + 100 * 2**30))  # beyond the RAM: only a number
    stop = threading.Event()

    def grow() -> None:  # about 5 MiB/s while the probe samples: 100 GiB last hours
        writer, n = redis.Redis.from_url(server.url), 0
        while not stop.wait(0.05):
            writer.set(f"grow:{n}", b"x" * 256 * 2**10)
            n += 1
        writer.close()

    grower = threading.Thread(target=grow)
    grower.start()
    try:
        checks = _by_name(redis_checks(server.url, None, settings))
    finally:
        stop.set()
        grower.join()
    days = checks["redis.memory_days_left"]
    assert days.status is Status.CRITICAL, days
    assert isinstance(days.value, float) and 0 < days.value < settings.redis_days_left_critical
    assert "100.0 GiB free" in days.detail and "/day" in days.detail and days.advice
    # Growth stopped: the same Redis, sampled again, has no end date.
    idle = _by_name(redis_checks(server.url, None, settings))["redis.memory_days_left"]
    assert (idle.status, idle.value) == (Status.HEALTHY, None), idle


def test_memory_near_maxmemory_is_critical(server: RedisServer, settings: DoctorSettings) -> None:
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory-policy", "noeviction")
    # Fill (in small values: a large one's query buffer is counted, then freed while the probe
    # samples), then put the limit halfway between the critical share and full.
    for n in range(64):
        client.set(f"ballast:{n}", b"x" * 64 * 2**10)
    used = int(client.info("memory")["used_memory"])
    share = (settings.redis_memory_critical + 1) / 2
    client.config_set("maxmemory", str(int(used / share)))
    memory = _by_name(redis_checks(server.url, None, settings))["redis.memory"]
    assert memory.status is Status.CRITICAL
    assert isinstance(memory.value, float) and memory.value >= settings.redis_memory_critical
    assert memory.advice


def test_a_stopped_server_and_an_unused_port_are_critical_with_the_error(
    server: RedisServer, settings: DoctorSettings
) -> None:
    server.stop()
    for url in (server.url, f"redis://127.0.0.1:{free_port()}/0"):
        (check,) = redis_checks(url, None, settings)
        assert (check.name, check.status) == ("redis.ping", Status.CRITICAL)
        assert "Connection refused" in check.detail


def test_a_password_protected_redis(
    tmp_path: Path, server: RedisServer, settings: DoctorSettings
) -> None:
    redis.Redis.from_url(server.url).config_set("requirepass", "s3cret-for-this-test")
    (refused,) = redis_checks(server.url, None, settings)
    assert refused.status is Status.CRITICAL and "Authentication" in refused.detail
    password = tmp_path / "password"
    password.write_text("s3cret-for-this-test\n")
    checks = _by_name(redis_checks(server.url, password, settings))
    assert checks["redis.ping"].status is Status.HEALTHY
    assert "s3cret" not in repr(refused)
