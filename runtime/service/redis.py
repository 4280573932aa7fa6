"""One way to open the Redis connection pool a service uses."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

from pydantic import AnyUrl
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from runtime.service.settings import SENTINEL_SCHEME, ServiceSettings

__all__ = ["connect", "hget", "hgetall", "hmget", "sentinel_target", "text", "zrangebyscore"]

SENTINEL_PORT = 26379


def sentinel_target(url: AnyUrl) -> tuple[str, int]:
    """The master set and database a `redis+sentinel://host:port/<master set>/<db>` URL names."""
    parts = [p for p in (url.path or "").split("/") if p]
    if not 1 <= len(parts) <= 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError(f"{SENTINEL_SCHEME} URL needs /<master set>[/<db>], not {url.path!r}")
    return parts[0], int(parts[1]) if len(parts) == 2 else 0


def connect(settings: ServiceSettings, *, max_connections: int = 64) -> Redis:
    # One pool per process, shared by every request: no connection per call.
    url = settings.redis_url
    password = settings.redis_password()
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "health_check_interval": 15,
        "socket_keepalive": True,
        "socket_connect_timeout": 5,
    }
    if url.scheme == SENTINEL_SCHEME:
        master, db = sentinel_target(url)
        # Sentinel shares the data password (auth on both, as the state layer installs it); the
        # pool asks it for the master on every new connection, so a failover is followed.
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [(url.host or "", url.port or SENTINEL_PORT)],
            sentinel_kwargs={"password": password, "socket_connect_timeout": 5},
        )
        master_client: Redis = sentinel.master_for(master, db=db, password=password, **options)
        return master_client
    client: Redis = Redis.from_url(str(url), password=password, **options)
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
