"""The agent manager service: the API, and the dispatch, event and maintenance loops beside it.

agentops serve manager        (settings: AGENTOPS_* variables, see ManagerSettings)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts.settings.manager import ManagerSettings
from runtime.manager import keys as k
from runtime.manager.api import Callers, ManagerState, install_api
from runtime.manager.balancing import make_balancer
from runtime.manager.dispatcher import Dispatcher
from runtime.manager.emergency import EmergencySwitch
from runtime.manager.metrics import ManagerMetrics
from runtime.manager.queue import TaskQueue
from runtime.manager.registry import AgentRegistry
from runtime.service.app import create_app
from runtime.service.auth import BearerAuth
from runtime.service.redis import Replication, connect, writable
from runtime.service.tracing import setup_tracing

__all__ = ["create_manager_app"]

log = logging.getLogger("agentops.manager")


def task_queue(redis: Redis, settings: ManagerSettings) -> TaskQueue:
    """The queue with the manager's attempt policy, limits and replicated acceptance."""
    return TaskQueue(
        redis,
        max_queued_per_type=settings.max_queued_per_type,
        max_attempts=settings.max_attempts,
        retention_s=settings.task_retention_s,
        dead_letter_cap=settings.dead_letter_cap,
        retry_after_s=settings.queue_full_retry_after_s,
        idempotency_ttl_s=settings.idempotency_ttl_s,
        replication=Replication.of(settings),
    )


def create_manager_app(settings: ManagerSettings) -> FastAPI:
    # Token files are read now: a missing one stops the start, not the first request.
    submitters = BearerAuth(settings.api_token_file, "tasks")
    agents = BearerAuth(settings.agent_token_file, "agents")
    alertmanager = BearerAuth(settings.webhook_token_file, "alertmanager")
    redis = connect(settings)
    metrics = ManagerMetrics()
    queue = task_queue(redis, settings)
    registry = AgentRegistry(redis, heartbeat_ttl_s=settings.heartbeat_ttl_s)
    balancer = make_balancer(settings.strategy, settings.score_weights())
    dispatcher = Dispatcher(redis, queue, registry, balancer, metrics, settings)
    state = ManagerState(
        settings=settings,
        queue=queue,
        registry=registry,
        dispatcher=dispatcher,
        emergency=EmergencySwitch(redis),
        metrics=metrics,
    )
    loops: list[asyncio.Task[None]] = []

    async def follow_emergency(stop: asyncio.Event) -> None:
        # Another replica may have received the webhook: the state in Redis is the truth.
        while not stop.is_set():
            with contextlib.suppress(RedisError, OSError):
                current = await state.emergency.state()
                state.emergency_active = current.active
                metrics.emergency.set(int(current.active))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.maintenance_interval_s)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        setup_tracing("agent-manager", settings)
        with contextlib.suppress(RedisError, OSError):
            state.emergency_active = (await state.emergency.state()).active
        stop = asyncio.Event()
        loops.extend(
            asyncio.create_task(loop(stop), name=loop.__name__)
            for loop in (
                dispatcher.run_dispatch,
                dispatcher.follow_events,
                dispatcher.run_maintenance,
                follow_emergency,
            )
        )
        log.info("agent manager %s serving %s", settings.instance_id, settings.agent_types)
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait(loops, timeout=5)
            for task in loops:
                task.cancel()
            await redis.aclose()

    async def ready() -> Mapping[str, tuple[bool, Any]]:
        redis_ok = await writable(redis, k.probe_key(settings.instance_id))
        dead = [t.get_name() for t in loops if t.done()]
        return {
            "redis": redis_ok,
            "loops": (not dead, f"stopped: {', '.join(dead)}" if dead else "running"),
            # Emergency mode does not make the manager unready: it still serves high priority.
            "emergency_mode": (True, {"active": state.emergency_active}),
        }

    app = create_app(
        title="agentops agent manager",
        version=version("agentops-platform"),
        registry=metrics.registry,
        ready=ready,
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        auths=(submitters, agents, alertmanager),
    )
    install_api(app, state, Callers(submitters, agents, alertmanager))
    return app
