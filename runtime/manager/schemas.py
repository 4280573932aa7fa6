"""The manager API's request and response bodies, with a limit on every field."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from contracts.settings.manager import AGENT_TYPE_PATTERN
from contracts.units import Share
from runtime.manager.queue import TaskRecord
from runtime.manager.registry import AgentRecord
from runtime.service.validation import unencodable

__all__ = [
    "AGENT_ID_PATTERN",
    "AgentId",
    "AgentRegistration",
    "AgentView",
    "EmergencyView",
    "Heartbeat",
    "TaskAccepted",
    "TaskId",
    "TaskSubmission",
    "TaskView",
    "UsageView",
]

AGENT_ID_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$"
_NAME = r"^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$"
_LABEL_KEY = r"^[A-Za-z0-9]([A-Za-z0-9_./-]{0,61}[A-Za-z0-9])?$"


LabelKey = Annotated[str, Field(pattern=_LABEL_KEY)]
LabelValue = Annotated[str, Field(max_length=63)]
AgentId = Annotated[str, Path(pattern=AGENT_ID_PATTERN)]


TaskId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


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
    complexity: Share = Field(default=0.5, description="0 trivial … 1 hardest")
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
    max_complexity: Share = Field(default=1.0, description="hardest task it fits")


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
