"""One way to open the Redis connection pool a service uses."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

from redis.asyncio import Redis

from runtime.service.settings import ServiceSettings

__all__ = ["connect", "hget", "hgetall", "hmget", "text", "zrangebyscore"]


def connect(settings: ServiceSettings, *, max_connections: int = 64) -> Redis:
    # One pool per process, shared by every request: no connection per call.
    client: Redis = Redis.from_url(
        str(settings.redis_url),
        password=settings.redis_password(),
        max_connections=max_connections,
        health_check_interval=15,
        socket_keepalive=True,
        socket_connect_timeout=5,
    )
    return client


# redis-py types its hash commands as "awaitable or value" for both clients; these give the
# asyncio client's real types and decode, so callers stay typed without casts everywhere.
async def hgetall(redis: Redis, key: str) -> dict[str, str]:
    raw = await cast("Awaitable[dict[bytes | str, bytes | str]]", redis.hgetall(key))
    return {text(k): text(v) for k, v in raw.items()}


async def hget(redis: Redis, key: str, field: str) -> str | None:
    raw = await cast("Awaitable[bytes | str | None]", redis.hget(key, field))
    return None if raw is None else text(raw)


async def hmget(redis: Redis, key: str, fields: list[str]) -> list[str | None]:
    raw = await cast("Awaitable[list[bytes | str | None]]", redis.hmget(key, fields))
    return [None if v is None else text(v) for v in raw]


async def zrangebyscore(
    redis: Redis, key: str, low: float | str, high: float | str, count: int
) -> list[str]:
    raw = await cast("Awaitable[list[bytes | str]]", redis.zrangebyscore(key, low, high, 0, count))
    return [text(v) for v in raw]


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
