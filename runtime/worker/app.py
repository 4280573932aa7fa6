"""The agent worker service: probes and metrics over HTTP, the work loop beside them.

    agentops serve worker        (settings: AGENTOPS_* variables, see WorkerSettings)

SIGTERM (uvicorn's shutdown) drains: the manager stops assigning, in-flight tasks finish within
`drain_timeout_s`, and the agent deregisters. The Deployment's terminationGracePeriodSeconds
leaves room for that plus the preStop pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI

from contracts.settings.worker import WorkerSettings
from runtime.manager.keys import probe_key
from runtime.service.app import create_app
from runtime.service.redis import connect, writable
from runtime.service.tracing import setup_tracing
from runtime.worker.handlers.base import Handler, load_handler
from runtime.worker.manager_client import ManagerClient
from runtime.worker.metrics import WorkerMetrics
from runtime.worker.runner import ArtifactKeeper, CostGate, Worker

__all__ = ["create_worker_app"]

log = logging.getLogger("agentops.worker")


def create_worker_app(settings: WorkerSettings) -> FastAPI:
    factory = load_handler(settings.handler)  # a wrong import path stops the start
    redis = connect(settings, max_connections=settings.capacity + 8)
    metrics = WorkerMetrics()
    manager = ManagerClient(settings)
    holder: dict[str, Worker] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        setup_tracing("agent-worker", settings)
        built = factory(settings)
        handler: Handler = await built if inspect.isawaitable(built) else built
        cost: CostGate | None = None
        if settings.cost_engine_url is not None:
            from runtime.worker.cost_client import CostClient

            cost = CostClient(settings)
        elif settings.cost_config is not None:
            from runtime.cost.metrics import CostMetrics
            from runtime.worker.cost_local import LocalCost

            cost = LocalCost(settings, redis, CostMetrics(metrics.registry))
        artifacts: ArtifactKeeper | None = None
        if settings.storage_bucket is not None:
            from runtime.worker.artifacts import ArtifactStore

            artifacts = ArtifactStore(settings)
        worker = holder["worker"] = Worker(
            settings, redis, manager, handler, metrics, cost, artifacts
        )
        stop = asyncio.Event()
        beats = asyncio.create_task(worker.heartbeats(stop), name="heartbeats")
        membership = asyncio.create_task(worker.register(stop), name="register")
        consume = asyncio.create_task(worker.consume(stop), name="consume")
        try:
            yield
        finally:
            stop.set()
            membership.cancel()
            await asyncio.wait([consume], timeout=2)
            consume.cancel()
            if worker.registered.is_set():
                await worker.drain()
            beats.cancel()
            await manager.aclose()
            if cost is not None:
                await cost.aclose()
            if artifacts is not None:
                await artifacts.aclose()
            await redis.aclose()

    async def ready() -> Mapping[str, tuple[bool, Any]]:
        worker = holder.get("worker")
        redis_ok = await writable(redis, probe_key(settings.agent_id))
        registered = worker is not None and worker.registered.is_set()
        draining = worker is not None and worker.draining
        return {
            "redis": redis_ok,
            "registered": (registered, settings.agent_id if registered else "not yet"),
            "draining": (not draining, {"in_flight": worker.in_flight if worker else 0}),
        }

    return create_app(
        title=f"agentops worker ({settings.agent_type})",
        version=version("agentops-platform"),
        registry=metrics.registry,
        ready=ready,
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
    )
