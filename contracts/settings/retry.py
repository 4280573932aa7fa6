"""The one retry policy: how long a task given back waits before it is offered again.

Both sides of the queue requeue tasks — the manager when it reclaims or evacuates a silent or
gone agent's work, the worker when an attempt fails or a dependency is out — and both read
these two settings from this one declaration (the wait doubles from the first to the cap).
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from contracts.settings.service import ServiceSettings

__all__ = ["RetryBackoffSettings"]


class RetryBackoffSettings(ServiceSettings):
    retry_backoff_s: float = Field(default=2.0, ge=0, le=600, description="first retry delay")
    retry_backoff_max_s: float = Field(
        default=60.0, ge=0, le=3600, description="longest retry delay (doubling from the first)"
    )

    @model_validator(mode="after")
    def _backoff_ordered(self) -> Self:
        if self.retry_backoff_max_s < self.retry_backoff_s:
            raise ValueError("retry_backoff_max_s must be ≥ retry_backoff_s")
        return self
