"""The doctor's own tunables: thresholds no stack config or alert defines, and its clocks.

Every other figure the doctor judges by comes from the stack (`Pulumi.<stack>.yaml`: budgets,
the secret rotation policy, the plan's Deployments and NetworkPolicies) or from the alert
catalogue (success rate, p95 latency, queue floor), so `doctor` and the alerts agree.
Override with `AGENTOPS_DOCTOR_*` environment variables.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DoctorSettings"]

# Prometheus' duration grammar, as the alert catalogue checks it.
_DURATION = re.compile(r"(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?")


class DoctorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGENTOPS_DOCTOR_", extra="ignore", frozen=True, validate_default=True
    )

    http_error_rate_warning: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="share of HTTP answers that are 5xx from which the report warns "
        "(the operations checklist's target: below 1 %)",
    )
    http_error_rate_critical: float = Field(
        default=0.05, gt=0, le=1, description="share of 5xx answers that is critical"
    )
    redis_memory_warning: float = Field(
        default=0.8, gt=0, lt=1, description="used memory / maxmemory from which the report warns"
    )
    redis_memory_critical: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="used memory / maxmemory that is critical: with noeviction, writes fail "
        "at 1.0, so the manager stops accepting tasks",
    )
    redis_growth_sample_s: float = Field(
        default=10,
        gt=0,
        le=300,
        description="Redis memory growth: seconds between the two INFO samples the probe takes "
        "(the rate the days-left figure extrapolates)",
    )
    redis_growth_noise_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="growth between the two samples at or below this is noise (client "
        "buffers, allocator), not a trend: Redis counts as not growing",
    )
    redis_days_left_warning: float = Field(
        default=14,
        gt=0,
        description="days until used memory reaches maxmemory at the sampled rate, below "
        "which the report warns",
    )
    redis_days_left_critical: float = Field(
        default=3,
        gt=0,
        description="days left below which it is critical: then writes (new tasks) are refused",
    )
    secret_rotation_notice_days: int = Field(
        default=14,
        ge=0,
        le=365,
        description="warn this many days before a secret reaches the stack's maximum age",
    )
    query_window: str = Field(
        default="5m", description="PromQL range of rates and quantiles (the alerts use 5m)"
    )
    timeout_s: float = Field(default=5, gt=0, le=120, description="per-request timeout")

    @field_validator("query_window")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not value or _DURATION.fullmatch(value) is None:
            raise ValueError(f"must be a Prometheus duration such as 5m: {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.http_error_rate_critical <= self.http_error_rate_warning:
            raise ValueError("http_error_rate_critical must be above http_error_rate_warning")
        if self.redis_memory_critical <= self.redis_memory_warning:
            raise ValueError("redis_memory_critical must be above redis_memory_warning")
        if self.redis_days_left_critical >= self.redis_days_left_warning:
            raise ValueError("redis_days_left_critical must be below redis_days_left_warning")
        return self
