"""Budgets, price overrides and the downgrade map the cost engine enforces."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Self

from pydantic import Field, field_validator, model_validator

from contracts.config.base import ConfigModel, RuleViolation
from contracts.prices import PriceBook, PricedModel, PriceOverride, UnknownModelError
from contracts.units import Share

__all__ = [
    "BudgetConfig",
    "CostConfig",
    "HourlyLimits",
    "ModelPriceOverride",
    "ModelProfile",
    "RateLimitsConfig",
    "RecommendationConfig",
    "TokenEstimate",
]

Money = Decimal


class BudgetConfig(ConfigModel):
    daily_usd: Money = Field(gt=0, description="daily spend limit in USD")
    monthly_usd: Money = Field(gt=0, description="monthly spend limit in USD")

    @model_validator(mode="after")
    def _month_covers_day(self) -> Self:
        if self.monthly_usd < self.daily_usd:
            raise RuleViolation(
                "monthlyUsd", str(self.monthly_usd), f"must be ≥ dailyUsd ({self.daily_usd})"
            )
        return self


class ModelPriceOverride(ConfigModel):
    """A negotiated or private model price; wins over the bundled price database."""

    model: str = Field(min_length=1, max_length=100, description="model name as used in usage")
    input_per_1k_usd: Money = Field(
        alias="inputPer1kUsd", ge=0, description="USD per 1,000 input tokens"
    )
    output_per_1k_usd: Money = Field(
        alias="outputPer1kUsd", ge=0, description="USD per 1,000 output tokens"
    )
    effective_from: dt.date = Field(description="first day the price applies")


class ModelProfile(ConfigModel):
    """What is not a price: how good and fast a model is, and how it spends tokens."""

    provider: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]+$",
        description="provider whose price list applies (openai, anthropic, google, ...)",
    )
    quality: Share = Field(description="answer quality score, 0..1")
    speed: Share = Field(description="speed score, 0..1")
    token_efficiency: float = Field(
        default=1.0, gt=0, le=5, description="tokens spent relative to the baseline model"
    )


def _default_profiles() -> dict[str, ModelProfile]:
    # Models genai-prices 0.2 prices today; the scores are ours (prices never live here).
    return {
        "gpt-5": ModelProfile(provider="openai", quality=0.95, speed=0.8, token_efficiency=1.0),
        "gpt-5-mini": ModelProfile(
            provider="openai", quality=0.86, speed=0.88, token_efficiency=1.0
        ),
        "gpt-4o": ModelProfile(provider="openai", quality=0.9, speed=0.9, token_efficiency=1.1),
        "claude-opus-4-5": ModelProfile(
            provider="anthropic", quality=0.93, speed=0.7, token_efficiency=0.9
        ),
        "claude-sonnet-4-5": ModelProfile(
            provider="anthropic", quality=0.91, speed=0.82, token_efficiency=1.0
        ),
        "claude-haiku-4-5": ModelProfile(
            provider="anthropic", quality=0.84, speed=0.86, token_efficiency=1.0
        ),
    }


def _default_downgrades() -> dict[str, str]:
    # Each target is cheaper than its source for input and output alike (a config rule).
    return {
        "gpt-5": "gpt-5-mini",
        "claude-opus-4-5": "claude-sonnet-4-5",
        "claude-sonnet-4-5": "claude-haiku-4-5",
    }


class HourlyLimits(ConfigModel):
    """Ceilings over any sliding hour; an unset ceiling does not limit."""

    requests: int | None = Field(default=None, gt=0, description="calls admitted per hour")
    tokens: int | None = Field(
        default=None, gt=0, description="input + output tokens admitted per hour"
    )
    cost_usd: Money | None = Field(default=None, gt=0, description="USD admitted per hour")
    tool_calls: int | None = Field(
        default=None, gt=0, description="MCP tool calls admitted per hour"
    )


class RateLimitsConfig(ConfigModel):
    """Hourly limits the cost engine enforces in Redis for the whole platform and per team."""

    overall: HourlyLimits = Field(
        default_factory=HourlyLimits, description="limits for all teams together"
    )
    teams: dict[str, HourlyLimits] = Field(
        default_factory=dict, description="limits per team, keyed by team name"
    )


class TokenEstimate(ConfigModel):
    input: int = Field(gt=0, description="input tokens of a task of medium complexity")
    output: int = Field(gt=0, description="output tokens of a task of medium complexity")


def _seed_task_tokens() -> dict[str, TokenEstimate]:
    # The seed article's base token counts per task type.
    return {
        "code_generation": TokenEstimate(input=500, output=2000),
        "security_analysis": TokenEstimate(input=1000, output=1500),
        "performance_testing": TokenEstimate(input=800, output=1200),
        "general": TokenEstimate(input=300, output=800),
    }


class RecommendationConfig(ConfigModel):
    """Weights of the model ranking (the seed article's scoring; its values are the defaults).

    score = quality × qualityPriority × (qualityComplexityBase + complexity)
          + speed × speedPriority + 1 / (1 + estimated USD) × (1 − qualityPriority − speedPriority)
    tokens = taskTokens[type] × (tokensComplexityBase + complexity × tokensComplexitySlope)
             × tokenEfficiency
    """

    quality_priority: Share = Field(
        default=0.7, description="default weight of quality when a task gives none"
    )
    speed_priority: Share = Field(
        default=0.3, description="default weight of speed when a task gives none"
    )
    complexity: Share = Field(
        default=0.5, description="default task complexity when a task gives none"
    )
    quality_complexity_base: float = Field(
        default=0.5, ge=0, le=2, description="quality weight multiplier at complexity 0"
    )
    tokens_complexity_base: float = Field(
        default=0.5, gt=0, le=5, description="token estimate multiplier at complexity 0"
    )
    tokens_complexity_slope: float = Field(
        default=1.5, ge=0, le=10, description="added token multiplier per unit of complexity"
    )
    task_tokens: dict[str, TokenEstimate] = Field(
        default_factory=_seed_task_tokens,
        description="base token estimate per task type; 'general' serves unknown types",
    )

    @model_validator(mode="after")
    def _general_known(self) -> Self:
        if "general" not in self.task_tokens:
            raise RuleViolation(
                "taskTokens", sorted(self.task_tokens), "must define the 'general' task type"
            )
        if self.quality_priority + self.speed_priority > 1:
            raise RuleViolation(
                "speedPriority",
                self.speed_priority,
                f"qualityPriority + speedPriority must not exceed 1 ({self.quality_priority} "
                "given for quality)",
            )
        return self


class CostConfig(ConfigModel):
    budget: BudgetConfig = Field(description="overall daily and monthly budget")
    team_budgets: dict[str, BudgetConfig] = Field(
        default_factory=dict, description="per-team budgets, keyed by team name"
    )
    alert_thresholds: list[float] = Field(
        default_factory=lambda: [0.5, 0.8, 0.9, 1.0],
        description="budget shares that raise an alert, ascending, in (0, 1]",
    )
    downgrade_at: float = Field(
        default=0.9, gt=0, le=1, description="budget share after which models are downgraded"
    )
    downgrade: dict[str, str] = Field(
        default_factory=_default_downgrades,
        description="model → cheaper model used once downgradeAt is crossed; the target must "
        "cost less at the effective prices, for input and output alike or for every task "
        "type's token estimate",
    )
    models: dict[str, ModelProfile] = Field(
        default_factory=_default_profiles,
        description="quality, speed and token efficiency per model",
    )
    price_overrides: list[ModelPriceOverride] = Field(
        default_factory=list, description="negotiated or private prices; win over the database"
    )
    rate_limits: RateLimitsConfig = Field(
        default_factory=RateLimitsConfig,
        description="requests, tokens and USD per sliding hour, overall and per team",
    )
    recommendation: RecommendationConfig = Field(
        default_factory=RecommendationConfig, description="weights of the model ranking"
    )
    reservation_timeout_seconds: int = Field(
        default=600,
        ge=10,
        le=86_400,
        description="a check-and-reserve not settled by recorded usage is released after this",
    )

    @field_validator("alert_thresholds")
    @classmethod
    def _thresholds(cls, values: list[float]) -> list[float]:
        if not values:
            raise ValueError("at least one threshold is needed")
        if any(not 0 < v <= 1 for v in values):
            raise ValueError("each threshold must lie in (0, 1]")
        if values != sorted(set(values)):
            raise ValueError("thresholds must be strictly ascending")
        return values

    @model_validator(mode="after")
    def _downgrades_known(self) -> Self:
        for source, target in self.downgrade.items():
            for role, name in (("key", source), ("target", target)):
                if name not in self.models:
                    raise RuleViolation(
                        f"downgrade.{source}",
                        name,
                        f"downgrade {role} must be a configured model: {sorted(self.models)}",
                    )
            if source == target:
                raise RuleViolation(f"downgrade.{source}", target, "cannot downgrade to itself")
        for source in self.downgrade:
            # The engine follows the map step by step: a cycle would never end.
            seen = [source]
            while seen[-1] in self.downgrade:
                seen.append(self.downgrade[seen[-1]])
                if seen[-1] in seen[:-1]:
                    raise RuleViolation(
                        f"downgrade.{source}", " → ".join(seen), "downgrades must not loop"
                    )
        return self

    @model_validator(mode="after")
    def _downgrades_save(self) -> Self:
        """A downgrade target must cost less than its source at the effective prices: the
        price database with the overrides on top, today and from each later override on."""
        book = self._price_book()
        today = dt.datetime.now(dt.UTC).date()
        later = {o.effective_from for o in self.price_overrides if o.effective_from > today}
        for source, target in self.downgrade.items():
            for day in sorted({today, *later}):
                at = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
                refusal = self._not_cheaper(book, source, target, at)
                if refusal:
                    raise RuleViolation(f"downgrade.{source}", target, refusal)
        return self

    def _price_book(self) -> PriceBook:
        overrides = [
            PriceOverride(o.model, o.input_per_1k_usd, o.output_per_1k_usd, o.effective_from)
            for o in self.price_overrides
        ]
        try:
            return PriceBook(
                [PricedModel(n, p.provider) for n, p in self.models.items()], overrides
            )
        except UnknownModelError as err:
            raise RuleViolation(f"models.{err.model}", err.model, str(err)) from None

    def _not_cheaper(self, book: PriceBook, source: str, target: str, at: dt.datetime) -> str:
        """Why `target` does not save money over `source` at `at`, or "" if it does."""
        src = (book.cost(source, 1000, 0, at), book.cost(source, 0, 1000, at))
        tgt = (book.cost(target, 1000, 0, at), book.cost(target, 0, 1000, at))
        if all(t <= s for t, s in zip(tgt, src, strict=True)) and tgt != src:
            return ""
        # Not cheaper per token on both sides: cheaper for every task type's token estimate?
        dearer = [
            kind
            for kind, est in sorted(self.recommendation.task_tokens.items())
            if book.cost(target, est.input, est.output, at)
            * Decimal(str(self.models[target].token_efficiency))
            >= book.cost(source, est.input, est.output, at)
            * Decimal(str(self.models[source].token_efficiency))
        ]
        if not dearer:
            return ""
        return (
            f"not cheaper than {source} on {at.date().isoformat()}: {target} costs "
            f"{tgt[0]:f} / {tgt[1]:f} USD per 1K input / output tokens, {source} "
            f"{src[0]:f} / {src[1]:f}, and no less for the token estimate of "
            f"{', '.join(dearer)}; choose a cheaper target or set a price override"
        )
