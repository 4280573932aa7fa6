"""The agent manager's settings: `AGENTOPS_*` environment variables (see docs/runtime-settings.md).

The Pulumi program sets them on the manager Deployment from the stack config
(infra/platform/workloads.py); `agentops dev up` sets them for local processes.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator

from contracts import ports
from contracts.balancing import ScoreWeights, Strategy
from contracts.settings.retry import RetryBackoffSettings
from contracts.units import Share

__all__ = ["AGENT_TYPE_PATTERN", "ManagerSettings"]

AGENT_TYPE_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_WEIGHTS = ScoreWeights()


def _instance() -> str:
    # The pod name on Kubernetes: a restarted replica finds the tasks it held under it.
    return os.environ.get("POD_NAME") or socket.gethostname()


class ManagerSettings(RetryBackoffSettings):
    port: int = Field(default=ports.MANAGER_HTTP, ge=1, le=65535, description="HTTP port")
    agent_types: list[str] = Field(
        min_length=1, description="agent types tasks may name (the stack's agent pools)"
    )
    request_routes: dict[str, str] = Field(
        default_factory=dict, description="request type → agent type that serves it"
    )
    strategy: Strategy = Field(default=Strategy.SCORE_BASED, description="balancing strategy")
    # The balancer's own defaults (ScoreWeights), stated once there.
    score_success_weight: Share = Field(
        default=_WEIGHTS.success, description="score-based: weight of the success rate"
    )
    score_speed_weight: Share = Field(
        default=_WEIGHTS.speed, description="score-based: weight of the response time"
    )
    score_load_weight: Share = Field(
        default=_WEIGHTS.load, description="score-based: weight of the free capacity"
    )
    score_compatibility_weight: Share = Field(
        default=_WEIGHTS.compatibility, description="score-based: weight of request-type match"
    )
    score_complexity_weight: Share = Field(
        default=_WEIGHTS.complexity_fit, description="score-based: weight of the complexity fit"
    )
    score_slow_seconds: float = Field(
        default=_WEIGHTS.slow_s, gt=0, description="speed score reaches 0"
    )
    heartbeat_ttl_s: float = Field(
        default=15.0, gt=0, le=600, description="an agent silent this long is unhealthy"
    )
    visibility_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="silence after which an agent's tasks go back"
    )
    max_attempts: int = Field(
        default=3, ge=1, le=20, description="attempts before a task is dead-lettered"
    )
    task_retention_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        le=400 * 24 * 3600,
        description="how long a finished or dead-lettered task's record is kept",
    )
    dead_letter_cap: int = Field(
        default=100_000,
        ge=100,
        le=10_000_000,
        description="dead-letter stream length past which the oldest entries are trimmed",
    )
    max_queued_per_type: int = Field(
        default=10_000, ge=1, le=10_000_000, description="queue bound per type (then 429)"
    )
    queue_full_retry_after_s: int = Field(
        default=5, ge=1, le=3600, description="Retry-After of a 429 for a full queue"
    )
    emergency_retry_after_s: int = Field(
        default=30, ge=1, le=3600, description="Retry-After of a 503 in emergency mode"
    )
    idempotency_ttl_s: int = Field(
        default=24 * 3600, ge=60, description="how long an idempotency key names its task"
    )
    dispatch_batch: int = Field(
        default=256, ge=1, le=10_000, description="ready tasks taken per type per round"
    )
    registry_sync_s: float = Field(
        default=1.0, gt=0, le=60, description="how often the balancer re-reads the registry"
    )
    maintenance_interval_s: float = Field(
        default=0.5, gt=0, le=60, description="retries, reclaims and gauges run this often"
    )
    instance_id: str = Field(
        default_factory=_instance,
        pattern=r"^[A-Za-z0-9._-]{1,253}$",
        description="consumer name in Redis (default: POD_NAME, then the host name)",
    )
    api_token_file: Path = Field(description="bearer tokens of task submitters, one per line")
    agent_token_file: Path = Field(description="bearer tokens of agent workers")
    webhook_token_file: Path = Field(description="bearer token Alertmanager presents")

    @field_validator("agent_types")
    @classmethod
    def _types(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(AGENT_TYPE_PATTERN, value):
                raise ValueError(f"{value!r} is not a DNS label (lower-case, digits, '-')")
        return values

    @model_validator(mode="after")
    def _routes_known(self) -> Self:
        for request_type, agent_type in self.request_routes.items():
            if agent_type not in self.agent_types:
                raise ValueError(
                    f"request_routes[{request_type!r}] names agent type {agent_type!r}, "
                    f"not one of agent_types {self.agent_types}"
                )
        return self

    def score_weights(self) -> ScoreWeights:
        return ScoreWeights(
            success=self.score_success_weight,
            speed=self.score_speed_weight,
            load=self.score_load_weight,
            compatibility=self.score_compatibility_weight,
            complexity_fit=self.score_complexity_weight,
            slow_s=self.score_slow_seconds,
        )
