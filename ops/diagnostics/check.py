"""What one diagnostic check found: its status, the value it measured and the threshold.

Pure data: the rules (ops.diagnostics.rules) build these from measurements, the probes
(ops.diagnostics.probes) feed the rules, the report renders them.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Check", "Status", "worst"]


class Status(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Status.HEALTHY: 0, Status.WARNING: 1, Status.CRITICAL: 2}

Measured = float | int | str | None


class Check(BaseModel):
    """One line of the health report."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="dependency and what was checked, e.g. redis.memory")
    status: Status
    value: Measured = Field(description="what was measured (None: nothing to measure)")
    threshold: str = Field(description="the rule the value was judged against")
    detail: str = Field(default="", description="what the value means, or the error")
    advice: str | None = Field(
        default=None, description="what to do about it; only when the check is not healthy"
    )


def worst(checks: Iterable[Check]) -> Status:
    """The most severe status among `checks` (healthy when there are none)."""
    return max((c.status for c in checks), key=lambda s: s.rank, default=Status.HEALTHY)
