"""Budgets, price overrides and the downgrade map the cost engine enforces."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Self

from pydantic import Field, field_validator, model_validator

from infra.config.base import ConfigModel, RuleViolation

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
    quality: float = Field(ge=0, le=1, description="answer quality score, 0..1")
    speed: float = Field(ge=0, le=1, description="speed score, 0..1")
    token_efficiency: float = Field(
        default=1.0, gt=0, le=5, description="tokens spent relative to the baseline model"
    )


def _seed_profiles() -> dict[str, ModelProfile]:
    # The seed article's scores (its prices are wrong and are not used).
    return {
        "gpt-5": ModelProfile(provider="openai", quality=0.95, speed=0.8, token_efficiency=1.0),
        "gpt-4o": ModelProfile(provider="openai", quality=0.9, speed=0.9, token_efficiency=1.1),
        "claude-opus-4-1": ModelProfile(
            provider="anthropic", quality=0.92, speed=0.7, token_efficiency=0.9
        ),
        "claude-3-5-sonnet": ModelProfile(
            provider="anthropic", quality=0.88, speed=0.85, token_efficiency=1.0
        ),
    }


class HourlyLimits(ConfigModel):
    """Ceilings over any sliding hour; an unset ceiling does not limit."""

    requests: int | None = Field(default=None, gt=0, description="calls admitted per hour")
    tokens: int | None = Field(
        default=None, gt=0, description="input + output tokens admitted per hour"
    )
    cost_usd: Money | None = Field(default=None, gt=0, description="USD admitted per hour")


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

    quality_priority: float = Field(
        default=0.7, ge=0, le=1, description="default weight of quality when a task gives none"
    )
    speed_priority: float = Field(
        default=0.3, ge=0, le=1, description="default weight of speed when a task gives none"
    )
    complexity: float = Field(
        default=0.5, ge=0, le=1, description="default task complexity when a task gives none"
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
        default_factory=lambda: {"gpt-5": "gpt-4o", "claude-opus-4-1": "claude-3-5-sonnet"},
        description="model → cheaper model used once downgradeAt is crossed",
    )
    models: dict[str, ModelProfile] = Field(
        default_factory=_seed_profiles, description="quality, speed and token efficiency per model"
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
