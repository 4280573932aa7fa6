"""The manager's and workers' Redis key layout: every key and stream name, spelled here only.

All of them form one group, `agentops:{manager}` (see `runtime.service.keys`): the queue's
scripts move a task between its ready stream, an agent's inbox, the task hash, the agent's hash
(load), the delayed set, the dead-letter and event streams and the type's counter in one step,
and the registry keeps the agent hash, the agent set and the heartbeats together, so all of them
share one hash tag and one cluster slot. `LAYOUT` is the table of what the group holds.
"""

from __future__ import annotations

from typing import Final

from runtime.manager.constants import Priority
from runtime.service.keys import ROOT, KeyLayout, keyspace

__all__ = [
    "AGENTS",
    "DEAD_LETTERS",
    "DELAYED",
    "DISPATCH_GROUP",
    "EMERGENCY",
    "EMERGENCY_ALERTS",
    "EVENTS",
    "EVENTS_GROUP",
    "GROUP",
    "HEARTBEATS",
    "LAYOUT",
    "PREFIX",
    "WORKER_GROUP",
    "agent_key",
    "agent_of_inbox",
    "idempotency_key",
    "inbox",
    "priority_of",
    "probe_key",
    "queued_counter",
    "ready_stream",
    "task_key",
    "type_of_ready",
]

GROUP: Final = "manager"
PREFIX: Final = keyspace(GROUP)
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

_QUEUE = ("submit", "assign", "start", "finish", "complete", "requeue", "promote")
_MOVES = ("assign", "complete", "requeue")  # the scripts that move a task between agents


def task_key(task_id: str) -> str:
    return f"{PREFIX}:task:{task_id}"


def idempotency_key(key: str) -> str:
    return f"{PREFIX}:idem:{key}"


def ready_stream(agent_type: str, priority: Priority) -> str:
    return f"{PREFIX}:ready:{agent_type}:{priority.name.lower()}"


def priority_of(stream: str) -> Priority:
    """The priority class of a ready stream."""
    return Priority[stream.rsplit(":", 1)[1].upper()]


def type_of_ready(stream: str) -> str:
    """The agent type of a ready stream."""
    return stream.split(":")[-2]


_INBOX = f"{PREFIX}:inbox:"


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
    """A key /ready writes: a write, unlike a ping, fails while Redis is out of memory. Alone in
    every script, so outside the group: it lands on whichever shard its name hashes to."""
    return f"{ROOT}:probe:{instance}"


def queued_counter(agent_type: str) -> str:
    """Tasks of a type accepted and not yet started: the bound, and the HPA's signal."""
    return f"{PREFIX}:queued:{agent_type}"


LAYOUT: Final = (
    KeyLayout(task_key("<id>"), "hash", "a task: payload, status, attempts, policy", _QUEUE),
    KeyLayout(idempotency_key("<key>"), "string", "idempotency key → task id", ("submit",)),
    KeyLayout(
        ready_stream("<type>", Priority.NORMAL).replace("normal", "<priority>"),
        "stream",
        "accepted tasks of a type and priority class",
        ("submit", "assign", "promote"),
    ),
    KeyLayout(inbox("<agent>"), "stream", "tasks assigned to an agent", (*_MOVES, "discard")),
    KeyLayout(
        agent_key("<agent>"),
        "hash",
        "registration, load, success rate",
        (*_MOVES, "register", "heartbeat", "deregister"),
    ),
    KeyLayout(AGENTS, "set", "registered agent ids", ("register", "deregister")),
    KeyLayout(
        HEARTBEATS, "zset", "agent id → last heartbeat", ("register", "heartbeat", "deregister")
    ),
    KeyLayout(
        queued_counter("<type>"),
        "string",
        "tasks of a type not yet started",
        ("submit", "start", "requeue"),
    ),
    KeyLayout(DELAYED, "zset", "task id → when its retry is due", ("requeue", "promote")),
    KeyLayout(DEAD_LETTERS, "stream", "tasks out of attempts (capped)", ("requeue",)),
    KeyLayout(EVENTS, "stream", "task events the managers count", ("start", *_MOVES[1:])),
    KeyLayout(EMERGENCY, "hash", "emergency mode: active, since, reason"),
    KeyLayout(EMERGENCY_ALERTS, "set", "fingerprints of the alerts behind it"),
)
