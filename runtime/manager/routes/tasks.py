"""Tasks: submitters queue work and read its outcome."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response, status
from opentelemetry import trace

from contracts import endpoints
from runtime.manager.constants import Priority
from runtime.manager.deps import (
    UNPROCESSABLE,
    ManagerState,
    Reader,
    State,
    Submitter,
    manager_state,
    problem,
    submitter,
)
from runtime.manager.emergency import admits
from runtime.manager.queue import QueueFull
from runtime.manager.schemas import TaskAccepted, TaskId, TaskSubmission, TaskView
from runtime.service.lean import lean_route, read_body
from runtime.service.logs import bind_task
from runtime.service.tracing import tracer

__all__ = ["SUBMIT_ROUTE", "accept", "router", "served"]

_tracer = tracer("agentops.manager")
log = logging.getLogger("agentops.manager")
router = APIRouter(tags=["tasks"])


def served(state: ManagerState, agent_type: str) -> str:
    s = state.settings
    if agent_type not in s.agent_types:
        raise problem(
            UNPROCESSABLE,
            f"agent_type is not served here; allowed: {', '.join(s.agent_types)}",
        )
    return agent_type


def _resolve_type(state: ManagerState, body: TaskSubmission) -> str:
    if body.agent_type is not None:
        return served(state, body.agent_type)
    if body.request_type is None:
        raise problem(UNPROCESSABLE, "give agent_type or request_type")
    routes = state.settings.request_routes
    routed = routes.get(body.request_type)
    if routed is None:
        known = ", ".join(sorted(routes)) or "none configured"
        raise problem(
            UNPROCESSABLE,
            f"request_type has no route to an agent type; routed request types: {known}",
        )
    return routed


async def accept(state: ManagerState, body: TaskSubmission) -> TaskAccepted:
    """Queue a submission (or find the task its idempotency key names): the submit itself."""
    agent_type = _resolve_type(state, body)
    priority = Priority[body.priority.upper()]
    with _tracer.start_as_current_span(
        "submit", attributes={"agent_type": agent_type, "priority": body.priority}
    ):
        if not admits(state.emergency_active, priority):
            state.metrics.submissions.labels(agent_type, "rejected_emergency").inc()
            raise problem(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "emergency mode: only high-priority tasks are admitted",
                state.settings.emergency_retry_after_s,
            )
        try:
            result = await state.queue.submit(
                agent_type,
                body.payload,
                priority=priority,
                request_type=body.request_type,
                idempotency_key=body.idempotency_key,
                complexity=body.complexity,
                team=body.team,
            )
            trace.get_current_span().set_attribute("task_id", result.task_id)
            bind_task(result.task_id)
            log.info("task %s %s", result.task_id, "accepted" if result.created else "known")
        except QueueFull as full:
            state.metrics.submissions.labels(agent_type, "rejected_full").inc()
            raise problem(
                status.HTTP_429_TOO_MANY_REQUESTS, str(full), full.retry_after_s
            ) from None
    state.metrics.submissions.labels(
        agent_type, "accepted" if result.created else "duplicate"
    ).inc()
    current = "queued"
    if not result.created:  # the earlier task may be long done
        record = await state.queue.get(result.task_id)
        current = record.status.value if record else "expired"
    return TaskAccepted(task_id=result.task_id, status=current, duplicate=not result.created)


def _location(accepted: TaskAccepted) -> str:
    return f"{endpoints.TASKS_API}/{accepted.task_id}"


async def submit(body: TaskSubmission, response: Response, state: State) -> TaskAccepted:
    """The submit as FastAPI declares it: the OpenAPI operation and the reference handler."""
    accepted = await accept(state, body)
    response.headers["Location"] = _location(accepted)
    return accepted


async def _submit_lean(request: Request) -> Response:
    """What serves POST /api/v1/tasks: the same auth, body, state and answer as `submit`,
    without FastAPI's per-request dependency solving and response re-validation."""
    body = await read_body(request, TaskSubmission, submitter)
    accepted = await accept(await manager_state(request), body)
    return Response(
        accepted.model_dump_json(),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": _location(accepted)},
        media_type="application/json",
    )


# The operation as FastAPI declares it (schema, reference); the fast lane serves it.
SUBMIT_ROUTE: dict[str, Any] = {
    "path": endpoints.TASKS_API,
    "endpoint": submit,
    "methods": ["POST"],
    "status_code": status.HTTP_202_ACCEPTED,
    "response_model": TaskAccepted,
    "dependencies": [Submitter],
    "responses": {429: {"description": "queue full"}, 503: {"description": "emergency mode"}},
}
router.add_api_route(**SUBMIT_ROUTE, route_class_override=lean_route(_submit_lean))


@router.get(f"{endpoints.TASKS_API}/{{task_id}}", response_model=TaskView, dependencies=[Reader])
async def get_task(task_id: TaskId, state: State) -> TaskView:
    bind_task(task_id)
    record = await state.queue.get(task_id)
    if record is None:
        raise problem(status.HTTP_404_NOT_FOUND, "no such task")
    return TaskView.of(record)
