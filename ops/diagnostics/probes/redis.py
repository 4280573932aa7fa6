"""Redis probe: PING, the server version, INFO memory (twice: the growth rate) and the eviction
policy.

The growth rate comes from two INFO samples `redis_growth_sample_s` apart rather than from
Prometheus: INFO answers the same for the in-cluster chart, ElastiCache and the local stack,
none of which is sure to have its memory scraped. Its limit: a short window sees the current
burst, not a daily trend, and growth below the noise floor counts as none."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import redis

from contracts.settings.service import read_secret_file
from ops.diagnostics.check import Check
from ops.diagnostics.probes.errors import describe
from ops.diagnostics.rules import unreachable
from ops.diagnostics.rules.redis import (
    MemoryGrowth,
    RedisMemory,
    days_left_check,
    eviction_check,
    memory_check,
    ping_check,
)
from ops.diagnostics.settings import DoctorSettings

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
        first = cast("dict[str, Any]", client.info("memory"))
        started = time.monotonic()
        time.sleep(settings.redis_growth_sample_s)
        memory = cast("dict[str, Any]", client.info("memory"))
        growth = MemoryGrowth(
            int(memory["used_memory"]) - int(first["used_memory"]), time.monotonic() - started
        )
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
        days_left_check(measured, growth, settings),
        eviction_check(measured),
    ]
