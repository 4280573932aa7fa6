"""Redis for the runtime's durable queues and ledger: in-cluster or ElastiCache."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Self

from pydantic import Field, model_validator

from contracts.config.agents import ResourcesConfig
from contracts.config.base import ConfigModel, RuleViolation

__all__ = [
    "APPENDFSYNC_LOSS_WINDOW",
    "Appendfsync",
    "ElastiCacheConfig",
    "InClusterRedisConfig",
    "RedisConfig",
    "RedisMode",
]


class RedisMode(StrEnum):
    IN_CLUSTER = "in-cluster"
    ELASTICACHE = "elasticache"


class Appendfsync(StrEnum):
    """When a Redis that writes an AOF fsyncs it (redis.conf `appendfsync`)."""

    ALWAYS = "always"
    EVERYSEC = "everysec"
    NO = "no"


# What a host crash (kernel panic, power loss, node lost with its local disk cache) can take of
# writes Redis has already acknowledged. A Redis process kill loses nothing in any mode: the
# AOF is written to the kernel before the reply, only the fsync differs.
APPENDFSYNC_LOSS_WINDOW: Final[dict[Appendfsync, str]] = {
    Appendfsync.ALWAYS: "none: each write is fsynced before Redis answers",
    Appendfsync.EVERYSEC: "up to about 1 s of acknowledged writes (2 s if the disk stalls)",
    Appendfsync.NO: "whatever the kernel has not flushed yet: typically up to 30 s",
}


class InClusterRedisConfig(ConfigModel):
    replicas: int = Field(default=3, ge=1, le=9, description="Redis replicas beside the primary")
    sentinel: bool = Field(default=True, description="run Sentinel for automatic failover")
    storage_gi: int = Field(default=8, ge=1, le=1000, description="persistent volume size")
    append_only: bool = Field(default=True, description="AOF persistence (durable queues)")
    resources: ResourcesConfig = Field(
        default_factory=lambda: ResourcesConfig(
            cpu_request="250m", cpu_limit="1", memory_request="512Mi", memory_limit="1Gi"
        ),
        description="requests and limits of each Redis pod",
    )


class ElastiCacheConfig(ConfigModel):
    node_type: str = Field(
        default="cache.t4g.medium",
        pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$",
        description="ElastiCache node type",
    )
    num_cache_clusters: int = Field(
        default=2, ge=1, le=6, description="primary + replicas across AZs (≥ 2)"
    )
    engine_version: str = Field(default="7.1", pattern=r"^\d+\.\d+$", description="Redis version")
    snapshot_retention_days: int = Field(default=7, ge=0, le=35, description="daily snapshots kept")


class RedisConfig(ConfigModel):
    mode: RedisMode = Field(default=RedisMode.IN_CLUSTER, description="in-cluster | elasticache")
    in_cluster: InClusterRedisConfig = Field(
        default_factory=InClusterRedisConfig, description="settings when mode is in-cluster"
    )
    elasticache: ElastiCacheConfig = Field(
        default_factory=ElastiCacheConfig, description="settings when mode is elasticache"
    )
    appendfsync: Appendfsync = Field(
        default=Appendfsync.ALWAYS,
        description=(
            "AOF fsync of the in-cluster Redis and the local devstack (ElastiCache ignores it: "
            "its durability is replication across AZs). Writes a host crash can lose — "
            + "; ".join(
                f"{mode.value}: {window}" for mode, window in APPENDFSYNC_LOSS_WINDOW.items()
            )
        ),
    )

    @model_validator(mode="after")
    def _multi_az(self) -> Self:
        if self.mode is RedisMode.ELASTICACHE and self.elasticache.num_cache_clusters < 2:
            raise RuleViolation(
                "elasticache.numCacheClusters",
                self.elasticache.num_cache_clusters,
                "Multi-AZ failover needs at least 2 cache clusters",
            )
        return self
