"""The manager's HTTP API: tasks (submitters), agents (workers), Alertmanager's webhook.

Every mutating endpoint needs a bearer token of its audience: submitters, agent workers and
Alertmanager each have their own token file. Bodies are validated with limits on every field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from contracts import endpoints
from contracts.settings.manager import AGENT_TYPE_PATTERN, ManagerSettings
from runtime.manager.constants import Priority
from runtime.manager.dispatcher import Dispatcher
from runtime.manager.emergency import AlertmanagerWebhook, EmergencySwitch, admits
from runtime.manager.metrics import ManagerMetrics
from runtime.manager.queue import QueueFull, TaskQueue, TaskRecord
from runtime.manager.registry import AgentProfile, AgentRecord, AgentRegistry
from runtime.service.auth import BearerAuth
from runtime.service.logs import bind_task
from runtime.service.validation import unencodable

__all__ = ["ManagerState", "build_router"]

_tracer = trace.get_tracer("agentops.manager")
log = logging.getLogger("agentops.manager")
_UNPROCESSABLE = 422

AGENT_ID_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$"
_NAME = r"^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$"
_LABEL_KEY = r"^[A-Za-z0-9]([A-Za-z0-9_./-]{0,61}[A-Za-z0-9])?$"


LabelKey = Annotated[str, Field(pattern=_LABEL_KEY)]
LabelValue = Annotated[str, Field(max_length=63)]
AgentId = Annotated[str, Path(pattern=AGENT_ID_PATTERN)]


@dataclass
class ManagerState:
    settings: ManagerSettings
    queue: TaskQueue
    registry: AgentRegistry
    dispatcher: Dispatcher
    emergency: EmergencySwitch
    metrics: ManagerMetrics
    emergency_active: bool = False


class TaskSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_type: str | None = Field(
        default=None, pattern=AGENT_TYPE_PATTERN, description="agent type to run the task"
    )
    request_type: str | None = Field(
        default=None,
        pattern=_NAME,
        description="kind of request; routes to an agent type when agent_type is not given",
    )
    payload: JsonValue = Field(description="the task's input, handed to the agent as is")

    @field_validator("payload")
    @classmethod
    def _storable(cls, payload: JsonValue) -> JsonValue:
        # JSON may escape a lone surrogate (\ud800); it is no Unicode text, so the task could
        # be stored but never read back. Refused here, naming where (never what).
        where = unencodable(payload, "payload")
        if where is not None:
            raise ValueError(f"{where} holds text that is not valid Unicode (a lone surrogate)")
        return payload

    priority: Literal["low", "normal", "high"] = "normal"
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="a retried submit with the same key returns the first task",
    )
    complexity: float = Field(default=0.5, ge=0, le=1, description="0 trivial … 1 hardest")
    team: str = Field(default="default", pattern=_NAME, description="team billed for the task")


class TaskAccepted(BaseModel):
    task_id: str
    status: str
    duplicate: bool = Field(description="true when the idempotency key named an earlier task")


class UsageView(BaseModel):
    model: str
    input_tokens: int
    output_tokens: int


class TaskView(BaseModel):
    task_id: str
    agent_type: str
    request_type: str | None
    team: str
    priority: str
    status: str
    attempts: int
    agent_id: str | None
    result: JsonValue
    error: str | None
    usage: list[UsageView] = Field(description="tokens the agent reported, per model call")
    submitted_at: float
    assigned_at: float | None
    started_at: float | None
    finished_at: float | None

    @classmethod
    def of(cls, r: TaskRecord) -> TaskView:
        return cls(
            task_id=r.task_id,
            agent_type=r.agent_type,
            request_type=r.request_type,
            team=r.team,
            priority=r.priority.name.lower(),
            status=r.status.value,
            attempts=r.attempts,
            agent_id=r.agent_id,
            result=r.result,
            error=r.error,
            usage=[UsageView(**vars(u)) for u in r.usage],
            submitted_at=r.submitted_at,
            assigned_at=r.assigned_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
        )


class AgentRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(pattern=AGENT_ID_PATTERN, description="unique, e.g. the pod name")
    agent_type: str = Field(pattern=AGENT_TYPE_PATTERN)
    capacity: int = Field(ge=1, le=1024, description="tasks it runs at once")
    weight: int = Field(default=1, ge=1, le=100, description="weighted round robin share")
    labels: dict[
        Annotated[str, Field(pattern=_LABEL_KEY)], Annotated[str, Field(max_length=63)]
    ] = Field(default_factory=dict, max_length=32)
    request_types: list[Annotated[str, Field(pattern=_NAME)]] = Field(
        default_factory=list, max_length=64, description="request types it handles best"
    )
    max_complexity: float = Field(default=1.0, ge=0, le=1, description="hardest task it fits")


class AgentView(BaseModel):
    agent_id: str
    agent_type: str
    capacity: int
    weight: int
    labels: dict[str, str]
    request_types: list[str]
    max_complexity: float
    load: int
    success_rate: float
    avg_response_s: float
    healthy: bool
    draining: bool
    registered_at: float
    last_heartbeat: float | None

    @classmethod
    def of(cls, a: AgentRecord) -> AgentView:
        p = a.profile
        return cls(
            agent_id=p.agent_id,
            agent_type=p.agent_type,
            capacity=p.capacity,
            weight=p.weight,
            labels=dict(p.labels),
            request_types=sorted(p.request_types),
            max_complexity=p.max_complexity,
            load=max(0, a.load),
            success_rate=a.success_rate,
            avg_response_s=a.avg_response_s,
            healthy=a.healthy,
            draining=a.draining,
            registered_at=a.registered_at,
            last_heartbeat=a.last_heartbeat,
        )


class Heartbeat(BaseModel):
    registered: bool


class EmergencyView(BaseModel):
    active: bool
    since: float | None
    firing_alerts: int


def _problem(code: int, detail: str, retry_after: int | None = None) -> HTTPException:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return HTTPException(code, detail=detail, headers=headers)


def build_router(
    state: ManagerState, submitters: BearerAuth, agents: BearerAuth, alertmanager: BearerAuth
) -> APIRouter:
    s = state.settings
    router = APIRouter()

    async def reader(request: Request) -> None:
        # Reads of tasks and agents: a submitter's or an agent's token.
        try:
            await submitters(request)
        except HTTPException:
            await agents(request)

    def served(agent_type: str) -> str:
        if agent_type not in s.agent_types:
            raise _problem(
                _UNPROCESSABLE,
                f"agent_type is not served here; allowed: {', '.join(s.agent_types)}",
            )
        return agent_type

    async def mirrored(agent_id: str) -> AgentView:
        """The agent as the registry has it now, pushed into this replica's balancer."""
        record = await state.registry.get(agent_id)
        if record is None:
            raise _problem(status.HTTP_404_NOT_FOUND, "agent is not registered")
        state.dispatcher.balancer.upsert(record.state())
        state.dispatcher.wake.set()
        return AgentView.of(record)

    def resolve_type(body: TaskSubmission) -> str:
        if body.agent_type is not None:
            return served(body.agent_type)
        if body.request_type is None:
            raise _problem(_UNPROCESSABLE, "give agent_type or request_type")
        routed = s.request_routes.get(body.request_type)
        if routed is None:
            known = ", ".join(sorted(s.request_routes)) or "none configured"
            raise _problem(
                _UNPROCESSABLE,
                f"request_type has no route to an agent type; routed request types: {known}",
            )
        return routed

    @router.post(
        endpoints.TASKS_API,
        status_code=status.HTTP_202_ACCEPTED,
        response_model=TaskAccepted,
        dependencies=[Depends(submitters)],
        tags=["tasks"],
        responses={429: {"description": "queue full"}, 503: {"description": "emergency mode"}},
    )
    async def submit(body: TaskSubmission, response: Response) -> TaskAccepted:
        agent_type = resolve_type(body)
        priority = Priority[body.priority.upper()]
        with _tracer.start_as_current_span(
            "submit", attributes={"agent_type": agent_type, "priority": body.priority}
        ):
            if not admits(state.emergency_active, priority):
                state.metrics.submissions.labels(agent_type, "rejected_emergency").inc()
                raise _problem(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    "emergency mode: only high-priority tasks are admitted",
                    s.emergency_retry_after_s,
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
                raise _problem(
                    status.HTTP_429_TOO_MANY_REQUESTS, str(full), full.retry_after_s
                ) from None
        state.metrics.submissions.labels(
            agent_type, "accepted" if result.created else "duplicate"
        ).inc()
        response.headers["Location"] = f"{endpoints.TASKS_API}/{result.task_id}"
        current = "queued"
        if not result.created:  # the earlier task may be long done
            record = await state.queue.get(result.task_id)
            current = record.status.value if record else "expired"
        return TaskAccepted(task_id=result.task_id, status=current, duplicate=not result.created)

    @router.get(
        f"{endpoints.TASKS_API}/{{task_id}}",
        response_model=TaskView,
        dependencies=[Depends(reader)],
        tags=["tasks"],
    )
    async def get_task(task_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]) -> TaskView:
        bind_task(task_id)
        record = await state.queue.get(task_id)
        if record is None:
            raise _problem(status.HTTP_404_NOT_FOUND, "no such task")
        return TaskView.of(record)

    @router.post(
        endpoints.AGENTS_API,
        status_code=status.HTTP_201_CREATED,
        response_model=AgentView,
        dependencies=[Depends(agents)],
        tags=["agents"],
    )
    async def register(body: AgentRegistration) -> AgentView:
        await state.registry.register(
            AgentProfile(
                agent_id=body.agent_id,
                agent_type=served(body.agent_type),
                capacity=body.capacity,
                weight=body.weight,
                labels=body.labels,
                request_types=frozenset(body.request_types),
                max_complexity=body.max_complexity,
            )
        )
        return await mirrored(body.agent_id)

    agent_path = f"{endpoints.AGENTS_API}/{{agent_id}}"

    @router.post(
        f"{agent_path}/heartbeat",
        response_model=Heartbeat,
        dependencies=[Depends(agents)],
        tags=["agents"],
    )
    async def heartbeat(agent_id: AgentId) -> Heartbeat:
        known = await state.registry.heartbeat(agent_id)
        if not known:
            raise _problem(status.HTTP_404_NOT_FOUND, "agent is not registered: register again")
        return Heartbeat(registered=True)

    @router.post(
        f"{agent_path}/drain",
        response_model=AgentView,
        dependencies=[Depends(agents)],
        tags=["agents"],
    )
    async def drain(agent_id: AgentId) -> AgentView:
        await state.registry.drain(agent_id)
        return await mirrored(agent_id)

    @router.delete(
        agent_path,
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=[Depends(agents)],
        tags=["agents"],
    )
    async def deregister(agent_id: AgentId) -> Response:
        # Whatever it still holds goes back to the queue before it is forgotten.
        await state.queue.evacuate(
            agent_id, f"agent {agent_id} deregistered", s.retry_backoff_s, s.retry_backoff_max_s
        )
        if not await state.registry.deregister(agent_id):
            raise _problem(status.HTTP_404_NOT_FOUND, "agent is not registered")
        state.dispatcher.balancer.remove(agent_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get(
        endpoints.AGENTS_API,
        response_model=list[AgentView],
        dependencies=[Depends(reader)],
        tags=["agents"],
    )
    async def list_agents(
        agent_type: Annotated[str | None, Query(pattern=AGENT_TYPE_PATTERN)] = None,
    ) -> list[AgentView]:
        records = await state.registry.snapshot()
        return [
            AgentView.of(a)
            for a in records
            if agent_type is None or a.profile.agent_type == agent_type
        ]

    @router.post(
        endpoints.ALERT_WEBHOOK,
        response_model=EmergencyView,
        dependencies=[Depends(alertmanager)],
        tags=["alerts"],
    )
    async def alerts(body: AlertmanagerWebhook) -> EmergencyView:
        current = await state.emergency.apply(body)
        state.emergency_active = current.active
        state.metrics.emergency.set(int(current.active))
        return EmergencyView(
            active=current.active, since=current.since, firing_alerts=current.firing_alerts
        )

    return router
