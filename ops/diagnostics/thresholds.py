"""Where a measured value falls against a warning and a critical threshold. Pure.

Comparisons follow the alert catalogue's: a ratio that must stay high is bad *below* its
threshold (`<`), a level that must stay low is bad *at or above* it (`>=`), so a value the
doctor calls healthy never fires the matching alert and the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from ops.diagnostics.check import Status

__all__ = ["Bounds", "at_or_above", "below"]


@dataclass(frozen=True)
class Bounds:
    """A warning and a critical threshold; `critical` None: the rule only ever warns."""

    warning: float
    critical: float | None = None

    def __post_init__(self) -> None:
        if self.critical is not None and self.critical == self.warning:
            raise ValueError(f"warning and critical thresholds are equal: {self.warning}")


def at_or_above(value: float, bounds: Bounds) -> Status:
    """Higher is worse: memory use, error rate, latency, budget share."""
    if bounds.critical is not None and bounds.critical < bounds.warning:
        raise ValueError(f"critical {bounds.critical} below warning {bounds.warning}")
    if bounds.critical is not None and value >= bounds.critical:
        return Status.CRITICAL
    if value >= bounds.warning:
        return Status.WARNING
    return Status.HEALTHY


def below(value: float, bounds: Bounds) -> Status:
    """Lower is worse: success rate, available replicas' share."""
    if bounds.critical is not None and bounds.critical > bounds.warning:
        raise ValueError(f"critical {bounds.critical} above warning {bounds.warning}")
    if bounds.critical is not None and value < bounds.critical:
        return Status.CRITICAL
    if value < bounds.warning:
        return Status.WARNING
    return Status.HEALTHY
