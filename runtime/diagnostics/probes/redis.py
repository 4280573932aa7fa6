"""Redis probe: PING, the server version, INFO memory and the eviction policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import redis

from runtime.diagnostics.check import Check
from runtime.diagnostics.probes.errors import describe
from runtime.diagnostics.rules import unreachable
from runtime.diagnostics.rules.redis import RedisMemory, eviction_check, memory_check, ping_check
from runtime.diagnostics.settings import DoctorSettings
from runtime.service.settings import read_secret_file

__all__ = ["redis_checks"]


def redis_checks(url: str, password_file: Path | None, settings: DoctorSettings) -> list[Check]:
    advice = "Check the Redis pods (or the ElastiCache cluster) and the URL; see the runbook's "
    advice += "Redis failover section."
    try:
        password = read_secret_file(password_file, "redis password") if password_file else None
    except ValueError as err:
        return [unreachable("redis.ping", "Redis", str(err), advice)]
    client = redis.Redis.from_url(
        url,
        password=password,
        socket_timeout=settings.timeout_s,
        socket_connect_timeout=settings.timeout_s,
        decode_responses=True,
    )
    try:
        client.ping()
        # redis-py types INFO as "awaitable or dict" for both clients; this one is sync.
        server = cast("dict[str, Any]", client.info("server"))
        memory = cast("dict[str, Any]", client.info("memory"))
    except redis.RedisError as err:
        return [unreachable("redis.ping", "Redis", describe(err), advice)]
    finally:
        client.close()
    measured = RedisMemory(
        used_bytes=int(memory["used_memory"]),
        maxmemory_bytes=int(memory.get("maxmemory", 0)),
        policy=str(memory.get("maxmemory_policy", "")),
    )
    return [
        ping_check(str(server.get("redis_version", ""))),
        memory_check(measured, settings),
        eviction_check(measured),
    ]
