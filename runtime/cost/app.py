"""The cost engine service: the shared app shell, the cost API, and its background work.

`agentops serve cost-engine` runs `build_app(CostEngineSettings())` under uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from contracts.settings.cost import CostEngineSettings
from runtime.cost import keys
from runtime.cost.api import install_api
from runtime.cost.engine import CostEngine, UsageWindow
from runtime.cost.metrics import CostMetrics
from runtime.service.app import create_app
from runtime.service.auth import BearerAuth
from runtime.service.redis import (
    TRANSIENT_REDIS_ERRORS,
    Outage,
    Replication,
    connect,
    writable,
)
from runtime.service.tracing import setup_tracing

__all__ = ["build_app"]

log = logging.getLogger("agentops.cost")
VERSION = "1.0.0"


def build_app(settings: CostEngineSettings) -> FastAPI:
    # Config, prices and the token file are checked here, before the port opens: a bad value
    # stops the process with its reason instead of failing requests later.
    cost = settings.cost()
    auth = BearerAuth(settings.api_token_file, "cost-engine")
    registry = CollectorRegistry()
    metrics = CostMetrics(registry)
    redis = connect(settings)
    window = UsageWindow(settings.usage_max_age_seconds, settings.usage_max_ahead_seconds)
    engine = CostEngine(
        redis, cost, metrics, usage_window=window, replication=Replication.of(settings)
    )
    setup_tracing("cost-engine", settings)

    async def background() -> None:
        # Other replicas record too: refresh the shared gauges and lapse stale reservations.
        outage = Outage(log, "cost engine background refresh: Redis")
        while True:
            try:
                await engine.sweep()
                await engine.refresh_gauges()
                outage.recovered()
            except TRANSIENT_REDIS_ERRORS as err:  # away for a moment: /ready reports it
                outage.failed(err)
            except Exception:
                log.exception("cost engine background refresh failed")
            await asyncio.sleep(settings.metrics_refresh_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(background())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await redis.aclose()

    async def ready() -> Mapping[str, tuple[bool, Any]]:
        return {
            "redis": await writable(redis, keys.probe(f"{socket.gethostname()}:{settings.port}"))
        }

    app = create_app(
        title="agentops cost engine",
        version=VERSION,
        registry=registry,
        ready=ready,
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        auths=(auth,),
    )
    install_api(app, engine, auth)
    app.state.engine = engine
    return app
