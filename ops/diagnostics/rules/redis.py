"""Redis: it answers, its memory has room and for how many days, and it never evicts the
task queue."""

from __future__ import annotations

from dataclasses import dataclass

from ops.diagnostics.check import Check, Status
from ops.diagnostics.rules.common import RUNBOOK
from ops.diagnostics.settings import DoctorSettings
from ops.diagnostics.thresholds import Bounds, at_or_above, below

__all__ = [
    "QUEUE_SAFE_POLICY",
    "MemoryGrowth",
    "RedisMemory",
    "days_left_check",
    "eviction_check",
    "memory_check",
    "ping_check",
]

_DAY_S = 86_400

# Tasks, the agent registry and the ledger live in Redis: an evicted key is a lost task or
# a forgotten charge. Only `noeviction` turns a full Redis into refused writes instead.
QUEUE_SAFE_POLICY = "noeviction"


@dataclass(frozen=True)
class RedisMemory:
    """From INFO memory."""

    used_bytes: int
    maxmemory_bytes: int  # 0: no limit configured
    policy: str


@dataclass(frozen=True)
class MemoryGrowth:
    """used_memory of two INFO samples `interval_s` apart: second minus first."""

    grown_bytes: int
    interval_s: float

    @property
    def per_day(self) -> float:
        return self.grown_bytes / self.interval_s * _DAY_S


def ping_check(version: str) -> Check:
    return Check(
        name="redis.ping",
        status=Status.HEALTHY,
        value=version,
        threshold="PING answers PONG",
        detail="redis_version",
    )


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if abs(n) >= 2**30 else _mib(n)


def _rate(growth: MemoryGrowth) -> str:
    return f"{_size(growth.per_day)}/day (+{growth.grown_bytes} B in {growth.interval_s:.1f} s)"


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


def days_left_check(memory: RedisMemory, growth: MemoryGrowth, settings: DoctorSettings) -> Check:
    """Days until used memory reaches maxmemory if it keeps growing as between the samples."""
    bounds = Bounds(settings.redis_days_left_warning, settings.redis_days_left_critical)
    name, threshold = (
        "redis.memory_days_left",
        (f"days to maxmemory ≥ {bounds.warning:g} (critical < {bounds.critical:g})"),
    )
    growing = growth.grown_bytes > settings.redis_growth_noise_bytes
    if memory.maxmemory_bytes == 0:
        return Check(
            name=name,
            status=Status.WARNING,
            value=None,
            threshold=threshold,
            detail="memory unbounded (no maxmemory): no cap to count down to; growing "
            + (_rate(growth) if growing else "not measurably"),
            advice="Set maxmemory below the pod's memory limit, so a full Redis refuses "
            "writes (503) instead of being OOM-killed.",
        )
    if not growing:
        return Check(
            name=name,
            status=Status.HEALTHY,
            value=None,
            threshold=threshold,
            detail=f"not growing: +{growth.grown_bytes} B in {growth.interval_s:.1f} s "
            f"(noise floor {settings.redis_growth_noise_bytes} B)",
        )
    free = max(memory.maxmemory_bytes - memory.used_bytes, 0)
    days = free / growth.per_day
    status = below(days, bounds)
    return Check(
        name=name,
        status=status,
        value=round(days, 2),
        threshold=threshold,
        detail=f"{_size(free)} free, growing {_rate(growth)}",
        advice=None
        if status is Status.HEALTHY
        else (
            "Find what grows (`redis-cli --bigkeys`: task records past their retention, the "
            "dead-letter stream), shorten the retention or raise maxmemory before it fills."
        ),
    )
