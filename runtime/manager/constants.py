"""Every Redis key and stream name the manager and workers use: spelled here only."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = [
    "AGENTS",
    "DEAD_LETTERS",
    "DELAYED",
    "DISPATCH_GROUP",
    "EMERGENCY",
    "EMERGENCY_ALERTS",
    "EVENTS",
    "EVENTS_GROUP",
    "HEARTBEATS",
    "WORKER_GROUP",
    "Priority",
    "agent_key",
    "agent_of_inbox",
    "idempotency_key",
    "inbox",
    "priority_of",
    "probe_key",
    "queued_counter",
    "ready_stream",
    "task_key",
]

PREFIX: Final = "agentops"
DISPATCH_GROUP: Final = "dispatch"  # manager replicas share the ready streams
WORKER_GROUP: Final = "worker"  # an agent's replicas of itself (one) read its inbox
DELAYED: Final = f"{PREFIX}:delayed"  # zset: task id → time it may be retried
DEAD_LETTERS: Final = f"{PREFIX}:dead"  # stream of tasks out of attempts
# stream of task events (started, finished, retry) the managers turn into metrics
EVENTS: Final = f"{PREFIX}:events"
EVENTS_GROUP: Final = "metrics"
AGENTS: Final = f"{PREFIX}:agents"  # set of registered agent ids
HEARTBEATS: Final = f"{PREFIX}:heartbeats"  # zset: agent id → time of its last heartbeat
# hash: emergency mode (active, since, reason); set: fingerprints of the firing alerts behind it
EMERGENCY: Final = f"{PREFIX}:emergency"
EMERGENCY_ALERTS: Final = f"{PREFIX}:emergency:alerts"


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


_INBOX = f"{PREFIX}:inbox:"


def priority_of(stream: str) -> Priority:
    """The priority class of a ready stream."""
    return Priority[stream.rsplit(":", 1)[1].upper()]


def inbox(agent_id: str) -> str:
    return f"{_INBOX}{agent_id}"


def agent_of_inbox(stream: str) -> str:
    if not stream.startswith(_INBOX):
        raise ValueError(f"{stream!r} is not an agent inbox")
    return stream[len(_INBOX) :]


def agent_key(agent_id: str) -> str:
    """Hash: the agent's registration, load and observed quality."""
    return f"{PREFIX}:agent:{agent_id}"


def probe_key(instance: str) -> str:
    """A key /ready writes: a write, unlike a ping, fails while Redis is out of memory."""
    return f"{PREFIX}:probe:{instance}"


def queued_counter(agent_type: str) -> str:
    """Tasks of a type accepted and not yet started: the bound, and the HPA's signal."""
    return f"{PREFIX}:queued:{agent_type}"
