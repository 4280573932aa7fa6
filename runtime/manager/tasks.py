"""The queue's records: a task as stored, what a submit and an assignment answer, the usage a
task reports. Pure data, no Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from runtime.manager.constants import Priority

__all__ = [
    "STATS_ALPHA",
    "Assignment",
    "QueueFull",
    "SubmitResult",
    "Taken",
    "TaskRecord",
    "TaskStatus",
    "TokenUsage",
]


class TaskStatus(StrEnum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"


# Weight of the newest completion in an agent's success rate and response time.
STATS_ALPHA = 0.2


class Assignment(IntEnum):
    AGENT_UNAVAILABLE = -1  # deregistered or draining: choose another agent
    ALREADY_ASSIGNED = 0  # another dispatcher moved it first
    ASSIGNED = 1


class QueueFull(Exception):
    """The type's queue is at its bound; the caller should retry after `retry_after_s`."""

    def __init__(self, agent_type: str, queued: int, retry_after_s: int) -> None:
        self.agent_type = agent_type
        self.queued = queued
        self.retry_after_s = retry_after_s
        super().__init__(f"queue for {agent_type} is full ({queued} tasks waiting)")


@dataclass(frozen=True)
class TokenUsage:
    """Tokens one model call of a task spent, as its provider reported them."""

    model: str
    input_tokens: int
    output_tokens: int

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model, "input": self.input_tokens, "output": self.output_tokens}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TokenUsage:
        return cls(str(raw["model"]), int(raw["input"]), int(raw["output"]))


@dataclass(frozen=True)
class SubmitResult:
    task_id: str
    created: bool  # False: the idempotency key named an earlier task


@dataclass(frozen=True)
class Taken:
    """A stream entry held until it is acknowledged: a ready task a dispatcher holds until it
    assigns it (or crashes), or an inbox task an agent holds until it completes it."""

    stream: str
    entry_id: str
    task_id: str
    # Routing hints of a ready entry (the balancer's score needs them).
    request_type: str | None = None
    complexity: float = 0.5
    # The task's type, on inbox entries.
    agent_type: str | None = None


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    agent_type: str
    request_type: str | None
    team: str
    complexity: float
    priority: Priority
    payload: Any
    status: TaskStatus
    attempts: int
    agent_id: str | None
    result: Any
    error: str | None
    usage: tuple[TokenUsage, ...]
    submitted_at: float
    assigned_at: float | None
    started_at: float | None
    finished_at: float | None
    # The attempt whose outcome is stored but not yet acknowledged (None: none finished).
    outcome_attempt: int | None = None
    max_attempts: int | None = None
    # W3C `traceparent` of the submit span: the attempt that runs the task continues its trace.
    traceparent: str | None = None

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> TaskRecord:
        def num(key: str) -> float | None:
            return float(raw[key]) if raw.get(key) else None

        return cls(
            task_id=raw["id"],
            agent_type=raw["agent_type"],
            request_type=raw.get("request_type") or None,
            team=raw.get("team", "default"),
            complexity=float(raw.get("complexity", "0.5")),
            priority=Priority(int(raw["priority"])),
            payload=json.loads(raw["payload"]),
            status=TaskStatus(raw["status"]),
            attempts=int(raw.get("attempts", "0")),
            agent_id=raw.get("agent") or None,
            result=json.loads(raw["result"]) if raw.get("result") else None,
            error=raw.get("error") or None,
            usage=tuple(TokenUsage.from_json(u) for u in json.loads(raw.get("usage") or "[]")),
            submitted_at=float(raw["submitted_at"]),
            assigned_at=num("assigned_at"),
            started_at=num("started_at"),
            finished_at=num("finished_at"),
            outcome_attempt=int(raw["outcome_attempt"]) if raw.get("outcome_attempt") else None,
            max_attempts=int(raw["max_attempts"]) if raw.get("max_attempts") else None,
            traceparent=raw.get("traceparent") or None,
        )
