"""The balancing strategies the manager offers and the score's weights: named here because the
stack config (`agents.manager.strategy`) and the manager's settings both speak of them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ScoreWeights", "Strategy"]


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_CONNECTIONS = "least_connections"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin"
    SCORE_BASED = "score_based"


@dataclass(frozen=True)
class ScoreWeights:
    """How much each signal counts in the score (from the manager's settings)."""

    success: float = 0.35
    speed: float = 0.2
    load: float = 0.25
    compatibility: float = 0.1
    complexity_fit: float = 0.1
    # Response time at which the speed signal reaches zero.
    slow_s: float = 30.0
