"""One way to open the Redis connection pool a service uses, and the typed, decoded reads
every service shares."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from pydantic import AnyUrl
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from runtime.service.settings import SENTINEL_SCHEME, ServiceSettings

__all__ = [
    "connect",
    "decoded",
    "hget",
    "hgetall",
    "hmget",
    "reply",
    "sentinel_target",
    "text",
    "zrangebyscore",
]

T = TypeVar("T")

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


async def reply(value: Awaitable[T] | T) -> T:
    """The asyncio client's answer, typed as the value: redis-py types every command as
    "awaitable or value" (one signature for both clients)."""
    if inspect.isawaitable(value):
        return await value
    return value


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decoded(fields: Mapping[Any, Any]) -> dict[str, str]:
    """A hash or stream entry with text keys and values."""
    return {text(k): text(v) for k, v in fields.items()}


async def hgetall(redis: Redis, key: str) -> dict[str, str]:
    return decoded(await reply(redis.hgetall(key)))


async def hget(redis: Redis, key: str, field: str) -> str | None:
    raw = await reply(redis.hget(key, field))
    return None if raw is None else text(raw)


async def hmget(redis: Redis, key: str, fields: list[str]) -> list[str | None]:
    return [None if v is None else text(v) for v in await reply(redis.hmget(key, fields))]


async def zrangebyscore(
    redis: Redis, key: str, low: float | str, high: float | str, count: int
) -> list[str]:
    return [text(v) for v in await reply(redis.zrangebyscore(key, low, high, 0, count))]
