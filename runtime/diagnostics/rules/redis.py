"""Redis: it answers, its memory has room, and it never evicts the task queue."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.diagnostics.check import Check, Status
from runtime.diagnostics.rules.common import RUNBOOK
from runtime.diagnostics.settings import DoctorSettings
from runtime.diagnostics.thresholds import Bounds, at_or_above

__all__ = ["QUEUE_SAFE_POLICY", "RedisMemory", "eviction_check", "memory_check", "ping_check"]

# Tasks, the agent registry and the ledger live in Redis: an evicted key is a lost task or
# a forgotten charge. Only `noeviction` turns a full Redis into refused writes instead.
QUEUE_SAFE_POLICY = "noeviction"


@dataclass(frozen=True)
class RedisMemory:
    """From INFO memory."""

    used_bytes: int
    maxmemory_bytes: int  # 0: no limit configured
    policy: str


def ping_check(version: str) -> Check:
    return Check(
        name="redis.ping",
        status=Status.HEALTHY,
        value=version,
        threshold="PING answers PONG",
        detail="redis_version",
    )


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def memory_check(memory: RedisMemory, settings: DoctorSettings) -> Check:
    bounds = Bounds(settings.redis_memory_warning, settings.redis_memory_critical)
    threshold = f"used/maxmemory < {bounds.warning:.0%} (critical ≥ {bounds.critical:.0%})"
    if memory.maxmemory_bytes == 0:
        return Check(
            name="redis.memory",
            status=Status.WARNING,
            value=_mib(memory.used_bytes),
            threshold=threshold,
            detail="no maxmemory set: Redis grows until the node's OOM killer stops it",
            advice=(
                "Set maxmemory below the pod's memory limit (in-cluster chart values; "
                "ElastiCache sets it from the node type)."
            ),
        )
    share = memory.used_bytes / memory.maxmemory_bytes
    status = at_or_above(share, bounds)
    return Check(
        name="redis.memory",
        status=status,
        value=round(share, 4),
        threshold=threshold,
        detail=f"{_mib(memory.used_bytes)} of {_mib(memory.maxmemory_bytes)}",
        advice=None
        if status is Status.HEALTHY
        else (
            "Find what grows (dead-lettered tasks, old ledger days: `redis-cli --bigkeys`), then "
            f"raise maxmemory or the node size; {RUNBOOK} (Redis failover) covers a move."
        ),
    )


def eviction_check(memory: RedisMemory) -> Check:
    safe = memory.policy == QUEUE_SAFE_POLICY
    return Check(
        name="redis.eviction",
        status=Status.HEALTHY if safe else Status.CRITICAL,
        value=memory.policy,
        threshold=f"maxmemory-policy = {QUEUE_SAFE_POLICY}",
        detail=""
        if safe
        else "Redis may evict keys when full: queued tasks and ledger entries can disappear",
        advice=None
        if safe
        else f"Set maxmemory-policy {QUEUE_SAFE_POLICY} (ElastiCache: in the parameter group).",
    )
