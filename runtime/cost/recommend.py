"""Model recommendation, pure: estimate tokens and cost per model, score, rank, explain.

The scoring is the seed article's, with its weights in config (`RecommendationConfig`):

    quality weight = quality priority × (quality complexity base + complexity)
    score = quality × quality weight + speed × speed priority
            + 1 / (1 + estimated USD) × (1 − quality priority − speed priority)

Models whose estimate exceeds the task's budget are excluded (and listed as such); when none
is left, `NoModelFits` names the cheapest. When the budget is past `downgradeAt`, the winner
is replaced by its downgrade-map target if that target fits the task's budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

from contracts.config.cost import ModelProfile, RecommendationConfig

__all__ = ["Candidate", "NoModelFits", "Recommendation", "Task", "estimate_tokens", "recommend"]

Pricer = Callable[[str, int, int], Decimal]


@dataclass(frozen=True)
class Task:
    task_type: str
    complexity: float
    quality_priority: float
    speed_priority: float
    budget_usd: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("complexity", "quality_priority", "speed_priority"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1]")
        if self.quality_priority + self.speed_priority > 1:
            raise ValueError("quality_priority + speed_priority must not exceed 1")
        if self.budget_usd is not None and self.budget_usd <= 0:
            raise ValueError("budget_usd must be positive")


@dataclass(frozen=True)
class Candidate:
    model: str
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: Decimal
    quality: float
    speed: float
    cost_score: float
    score: float


@dataclass(frozen=True)
class Recommendation:
    model: str
    chosen: Candidate
    ranked: list[Candidate]  # every model within budget, best first (the chosen one included)
    excluded: dict[str, Decimal]  # model → estimate over the task's budget
    reasoning: str
    downgraded_from: str | None = None
    notes: list[str] = field(default_factory=list)


class NoModelFits(Exception):
    def __init__(self, budget: Decimal, cheapest: str, cheapest_cost: Decimal) -> None:
        self.budget = budget
        self.cheapest = cheapest
        self.cheapest_cost = cheapest_cost
        super().__init__(
            f"no model fits the budget of {budget} USD: the cheapest, {cheapest}, is estimated "
            f"at {cheapest_cost} USD"
        )


def _d(value: float) -> Decimal:
    return Decimal(str(value))


def estimate_tokens(
    task: Task, profile: ModelProfile, weights: RecommendationConfig
) -> tuple[int, int]:
    """Input and output tokens, rounded down like the seed (decimal maths: no float noise)."""
    base = weights.task_tokens.get(task.task_type, weights.task_tokens["general"])
    factor = (
        _d(weights.tokens_complexity_base)
        + _d(task.complexity) * _d(weights.tokens_complexity_slope)
    ) * _d(profile.token_efficiency)
    return (
        int((base.input * factor).to_integral_value(ROUND_FLOOR)),
        int((base.output * factor).to_integral_value(ROUND_FLOOR)),
    )


def _score(
    task: Task, profile: ModelProfile, cost: Decimal, weights: RecommendationConfig
) -> tuple[float, float]:
    cost_score = 1.0 / (1.0 + float(cost))  # a score, not money: float is fine here
    quality_weight = task.quality_priority * (weights.quality_complexity_base + task.complexity)
    score = (
        profile.quality * quality_weight
        + profile.speed * task.speed_priority
        + cost_score * (1.0 - task.quality_priority - task.speed_priority)
    )
    return cost_score, score


def recommend(
    task: Task,
    profiles: Mapping[str, ModelProfile],
    price: Pricer,
    weights: RecommendationConfig,
    downgrade: Mapping[str, str] | None = None,
    downgrade_reason: str = "",
) -> Recommendation:
    """Rank every model for the task; `downgrade` is the map to apply when a budget is past
    its downgrade share (None when no downgrade is due)."""
    candidates: list[Candidate] = []
    excluded: dict[str, Decimal] = {}
    for model in sorted(profiles):
        profile = profiles[model]
        tokens_in, tokens_out = estimate_tokens(task, profile, weights)
        cost = price(model, tokens_in, tokens_out)
        if task.budget_usd is not None and cost > task.budget_usd:
            excluded[model] = cost
            continue
        cost_score, score = _score(task, profile, cost, weights)
        candidates.append(
            Candidate(
                model,
                tokens_in,
                tokens_out,
                cost,
                profile.quality,
                profile.speed,
                cost_score,
                score,
            )
        )
    if not candidates:
        assert task.budget_usd is not None  # without a budget nothing is excluded
        cheapest = min(excluded, key=lambda m: (excluded[m], m))
        raise NoModelFits(task.budget_usd, cheapest, excluded[cheapest])
    # Ties go to the cheaper model, then the name: the answer never depends on dict order.
    ranked = sorted(candidates, key=lambda c: (-c.score, c.estimated_cost_usd, c.model))
    best = ranked[0]
    chosen, downgraded_from, notes = best, None, []
    if downgrade and best.model in downgrade:
        target = downgrade[best.model]
        replacement = next((c for c in ranked if c.model == target), None)
        if replacement is not None:
            chosen, downgraded_from = replacement, best.model
            notes.append(f"downgraded {best.model} → {target}: {downgrade_reason}")
        else:
            notes.append(
                f"downgrade of {best.model} → {target} skipped: {target} is over the task budget"
            )
    others = [c for c in ranked if c.model != chosen.model]
    reasoning = (
        f"{chosen.model} scores {chosen.score:.4f} (quality {chosen.quality}, speed "
        f"{chosen.speed}, estimated {chosen.input_tokens}+{chosen.output_tokens} tokens for "
        f"{chosen.estimated_cost_usd} USD)"
    )
    if others:
        reasoning += f"; next best {others[0].model} at {others[0].score:.4f}"
    if excluded:
        reasoning += f"; over the task budget: {', '.join(sorted(excluded))}"
    return Recommendation(chosen.model, chosen, ranked, excluded, reasoning, downgraded_from, notes)
