"""One way to open the Redis connection pool a service uses."""

from __future__ import annotations

from redis.asyncio import Redis

from runtime.service.settings import ServiceSettings

__all__ = ["connect"]


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
