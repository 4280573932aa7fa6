"""The cost engine API's request and response bodies (money as exact decimal strings)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.units import Share
from runtime.cost.analysis import SpendAnalysis
from runtime.cost.recommend import Recommendation

__all__ = [
    "AlertOut",
    "CandidateOut",
    "LimitOut",
    "PriceOut",
    "RecommendIn",
    "RecommendOut",
    "ReportOut",
    "ReserveIn",
    "ReserveOut",
    "UsageIn",
    "UsageOut",
    "recommend_out",
    "report_out",
]

TaskId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$", description="task id")
]
Attempt = Annotated[int, Field(ge=1, le=1000, description="attempt number of the task, from 1")]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:/-]+$")]
Label = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
]
Tokens = Annotated[int, Field(ge=0, le=100_000_000)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UsageIn(_In):
    task_id: TaskId
    attempt: Attempt
    model: Name
    agent_type: Label
    team: Label
    input_tokens: Tokens
    output_tokens: Tokens
    at: AwareDatetime | None = Field(default=None, description="when the call ended")


class AlertOut(BaseModel):
    scope: str
    window: str
    threshold: float
    spent_usd: Decimal
    budget_usd: Decimal


class UsageOut(BaseModel):
    idempotency_key: str
    recorded: bool
    cost_usd: Decimal
    settled_reservation: bool
    alerts: list[AlertOut]


class ToolCallIn(_In):
    task_id: TaskId
    attempt: Attempt
    team: Label
    server: Label
    tool: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]


class ReserveIn(_In):
    task_id: TaskId
    attempt: Attempt
    team: Label
    agent_type: Label
    model: Name
    max_input_tokens: Tokens
    max_output_tokens: Tokens


class ReserveOut(BaseModel):
    reservation_id: str
    created: bool
    requested_model: str
    model: str
    downgraded: bool
    reason: str | None
    max_cost_usd: Decimal
    expires_at: dt.datetime


class RecommendIn(_In):
    task_type: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9_-]+$")]
    complexity: Share | None = None
    quality_priority: Share | None = None
    speed_priority: Share | None = None
    budget_usd: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=9)] | None = None
    team: Label | None = None


class CandidateOut(BaseModel):
    model: str
    estimated_cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    quality: float
    speed: float
    score: float


class RecommendOut(BaseModel):
    model: str
    estimated_cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    score: float
    reasoning: str
    downgraded_from: str | None
    notes: list[str]
    alternatives: list[CandidateOut]
    excluded: dict[str, Decimal]


class DayOut(BaseModel):
    date: dt.date
    spend_usd: Decimal
    budget_usd: Decimal


class SuggestionOut(BaseModel):
    kind: str
    priority: str
    description: str
    action: str
    potential_savings_usd: Decimal | None


class ReportOut(BaseModel):
    as_of: dt.date
    series: list[DayOut]
    total_usd: Decimal
    daily_average_usd: Decimal
    trend_usd_per_day: Decimal
    month_to_date_usd: Decimal
    projected_month_end_usd: Decimal
    monthly_budget_usd: Decimal
    burn_rate: Decimal
    by_model: dict[str, Decimal]
    suggestions: list[SuggestionOut]


class LimitOut(BaseModel):
    scope: str
    window_seconds: int
    requests: int
    tokens: int
    cost_usd: Decimal
    open_holds: int
    limit_requests: int | None
    limit_tokens: int | None
    limit_cost_usd: Decimal | None


class PriceOut(BaseModel):
    model: str
    provider: str | None
    input_per_1k_usd: Decimal
    output_per_1k_usd: Decimal
    source: str


def report_out(analysis: SpendAnalysis, daily_budget: Decimal) -> ReportOut:
    """The analysis as it is, each day beside the daily budget."""
    days = [DayOut(date=d, spend_usd=v, budget_usd=daily_budget) for d, v in analysis.series]
    return ReportOut.model_validate({**asdict(analysis), "series": days})


def recommend_out(answer: Recommendation) -> RecommendOut:
    """The chosen candidate's figures, the answer's reasoning and notes, the other candidates."""
    others = [asdict(c) for c in answer.ranked if c.model != answer.model]
    return RecommendOut.model_validate(
        {**asdict(answer.chosen), **asdict(answer), "alternatives": others}
    )
