"""Every Redis key and stream name the manager and workers use: spelled here only."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = [
    "DEAD_LETTERS",
    "DELAYED",
    "DISPATCH_GROUP",
    "WORKER_GROUP",
    "Priority",
    "idempotency_key",
    "inbox",
    "queued_counter",
    "ready_stream",
    "task_key",
]

PREFIX: Final = "agentops"
DISPATCH_GROUP: Final = "dispatch"  # manager replicas share the ready streams
WORKER_GROUP: Final = "worker"  # an agent's replicas of itself (one) read its inbox
DELAYED: Final = f"{PREFIX}:delayed"  # zset: task id → time it may be retried
DEAD_LETTERS: Final = f"{PREFIX}:dead"  # stream of tasks out of attempts


class Priority(IntEnum):
    """Higher is served first; a lower class waits while a higher one has work."""

    LOW = 0
    NORMAL = 1
    HIGH = 2


def task_key(task_id: str) -> str:
    return f"{PREFIX}:task:{task_id}"


def idempotency_key(key: str) -> str:
    return f"{PREFIX}:idem:{key}"


def ready_stream(agent_type: str, priority: Priority) -> str:
    return f"{PREFIX}:ready:{agent_type}:{priority.name.lower()}"


def inbox(agent_id: str) -> str:
    return f"{PREFIX}:inbox:{agent_id}"


def queued_counter(agent_type: str) -> str:
    """Tasks of a type accepted and not yet started: the bound, and the HPA's signal."""
    return f"{PREFIX}:queued:{agent_type}"
