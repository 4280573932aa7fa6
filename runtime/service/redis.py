"""One way to open the Redis connection pool a service uses, and the typed, decoded reads
every service shares."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Final, TypeVar

from pydantic import AnyUrl
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contracts.settings.service import SENTINEL_SCHEME, ServiceSettings

__all__ = [
    "TRANSIENT_REDIS_ERRORS",
    "Outage",
    "connect",
    "decoded",
    "hget",
    "hgetall",
    "hmget",
    "reply",
    "sentinel_target",
    "text",
    "writable",
    "zrangebyscore",
]

T = TypeVar("T")

SENTINEL_PORT = 26379

# "Redis cannot serve this now", not "this request is wrong": down or restarting (connection
# errors, BusyLoadingError while it loads its data), out of memory, a replica or a failover in
# progress. Callers back off and retry; the HTTP services answer 503 with Retry-After.
TRANSIENT_REDIS_ERRORS: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    OutOfMemoryError,
    ReadOnlyError,
    MasterDownError,
    TryAgainError,
    ClusterDownError,
    OSError,
)


class Outage:
    """One log line when a dependency becomes unavailable and one when it is back, however
    many requests or loop steps meet it in between."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.log = logger
        self.what = what
        self.since: float | None = None
        self.refused = 0

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, err: BaseException) -> None:
        self.refused += 1
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning("%s unavailable (%s): backing off until it is back", self.what, err)

    def recovered(self) -> None:
        if self.since is not None:
            self.log.warning(
                "%s back after %.1fs (%d calls met the outage)",
                self.what,
                time.monotonic() - self.since,
                self.refused,
            )
            self.since, self.refused = None, 0


async def writable(redis: Redis, probe_key: str) -> tuple[bool, str]:
    """Whether Redis takes a write now: a ping answers while Redis is out of memory or
    read-only, a write does not. For /ready."""
    try:
        await reply(redis.set(probe_key, "1", ex=60))
    except OutOfMemoryError:
        return False, "out of memory (maxmemory reached): writes refused"
    except TRANSIENT_REDIS_ERRORS as err:
        return False, f"unavailable: {type(err).__name__}"
    return True, "write ok"


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
