"""The cost engine's HTTP API (prefix /api/v1), called by the manager and the agent workers.

Every endpoint needs `Authorization: Bearer <token>` (a token of AGENTOPS_API_TOKEN_FILE).
Money is a JSON string holding a decimal (exact), never a float. One call of a task is
identified by `task_id` + `attempt`: that pair is the idempotency key of its usage record and
the id of its reservation.

POST /api/v1/reservations — check-and-reserve before a model call
    body: task_id, attempt, team, agent_type, model, max_input_tokens, max_output_tokens
    201:  reservation_id, created, requested_model, model (use this one), downgraded, reason,
          max_cost_usd, expires_at
    429:  an hourly limit is reached (Retry-After header; body: scope, dimension, limit)
    402:  a budget cannot hold the call (Retry-After: until the window ends; body: scope,
          window, budget_usd, spent_usd, reserved_usd, requested_usd)
    422:  unknown model (the field named, the configured models listed), or one call larger
          than a limit
DELETE /api/v1/reservations/{task_id}/{attempt} — the call did not happen: release the hold
    200:  released (false when nothing was held); the budgets and the hourly limits get back
          everything the call held, its request included
POST /api/v1/usage — record a call's usage; settles the reservation of the same task attempt,
    and the hourly limits' hold of its maximum to its actual tokens and cost
    body: task_id, attempt, model, agent_type, team, input_tokens, output_tokens, at (optional,
          ISO 8601 with zone; default now; within the engine's usage window around now,
          AGENTOPS_USAGE_MAX_AGE_SECONDS back and AGENTOPS_USAGE_MAX_AHEAD_SECONDS ahead)
    200:  idempotency_key, recorded (false for a replay: nothing counted twice), cost_usd,
          settled_reservation, alerts (budget thresholds this record crossed first)
    422:  unknown model, or `at` outside the window (the field and the window named)
GET /api/v1/limits — what each limited scope's sliding hour counts now
    200:  [scope, window_seconds, requests, tokens, cost_usd, open_holds, limit_requests,
          limit_tokens, limit_cost_usd]
POST /api/v1/recommendations — which model should a task use
    body: task_type, complexity, quality_priority, speed_priority (each 0..1, optional: config
          defaults), budget_usd (optional), team (optional: its budgets drive downgrades)
    200:  model, estimated_cost_usd, input_tokens, output_tokens, score, reasoning,
          downgraded_from, notes, alternatives[] (model, estimated_cost_usd, input_tokens,
          output_tokens, quality, speed, score), excluded {model: estimated_cost_usd}
    422:  no model fits the budget (body: cheapest, cheapest_cost_usd)
GET /api/v1/report?days=30 — spend analysis from the ledger
    200:  as_of, series[] (date, spend_usd, budget_usd), total_usd, daily_average_usd,
          trend_usd_per_day, month_to_date_usd, projected_month_end_usd, monthly_budget_usd,
          burn_rate, by_model {model: usd}, suggestions[] (kind, priority, description, action,
          potential_savings_usd)
GET /api/v1/prices — effective price per model and its source

No 4xx body repeats a submitted value: errors name the field and what is allowed.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status
from fastapi.responses import JSONResponse
from opentelemetry.trace import Span, SpanKind
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts import endpoints
from contracts.prices import UnknownModelError
from runtime.cost.analysis import SpendAnalysis
from runtime.cost.budgets import window_end
from runtime.cost.engine import AtOutsideWindow, CostEngine
from runtime.cost.ledger import from_nano
from runtime.cost.limits import WINDOW_S, LimitTooSmall, RateLimited
from runtime.cost.recommend import NoModelFits, Task
from runtime.cost.reservations import BudgetExceeded
from runtime.service.auth import BearerAuth
from runtime.service.tracing import tracer

__all__ = [
    "AlertOut",
    "LimitOut",
    "PriceOut",
    "RecommendIn",
    "RecommendOut",
    "ReportOut",
    "ReserveIn",
    "ReserveOut",
    "UsageIn",
    "UsageOut",
    "report_out",
    "router",
]

_tracer = tracer("agentops.cost")

TaskId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$", description="task id")
]
Attempt = Annotated[int, Field(ge=1, le=1000, description="attempt number of the task, from 1")]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:/-]+$")]
Label = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
]
Tokens = Annotated[int, Field(ge=0, le=100_000_000)]
Share = Annotated[float, Field(ge=0, le=1)]


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


def _error(code: int, body: dict[str, Any], retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(body, status_code=code, headers=headers)


def _rate_limited(err: RateLimited) -> JSONResponse:
    body = {"detail": str(err), "scope": err.scope, "dimension": err.dimension, "limit": err.limit}
    return _error(429, body, err.retry_after_s)


def _invalid(field: str, error: str) -> JSONResponse:
    """A 422 in the shape of the service's validation errors: the field and what is allowed."""
    return _error(422, {"detail": "invalid request", "errors": [{"field": field, "error": error}]})


def _unknown(engine: CostEngine) -> JSONResponse:
    # The submitted name is not repeated: the body lists what is allowed instead.
    return _invalid("model", f"not a priced, configured model: {', '.join(engine.book.models)}")


def report_out(analysis: SpendAnalysis, daily_budget: Decimal) -> ReportOut:
    return ReportOut(
        as_of=analysis.as_of,
        series=[DayOut(date=d, spend_usd=v, budget_usd=daily_budget) for d, v in analysis.series],
        total_usd=analysis.total_usd,
        daily_average_usd=analysis.daily_average_usd,
        trend_usd_per_day=analysis.trend_usd_per_day,
        month_to_date_usd=analysis.month_to_date_usd,
        projected_month_end_usd=analysis.projected_month_end_usd,
        monthly_budget_usd=analysis.monthly_budget_usd,
        burn_rate=analysis.burn_rate,
        by_model=analysis.by_model,
        suggestions=[
            SuggestionOut(
                kind=s.kind,
                priority=s.priority,
                description=s.description,
                action=s.action,
                potential_savings_usd=s.potential_savings_usd,
            )
            for s in analysis.suggestions
        ],
    )


def _span(name: str, task_id: str, attempt: int, model: str) -> AbstractContextManager[Span]:
    """A span of the task's trace: the worker's call carries its context (traceparent)."""
    return _tracer.start_as_current_span(
        name,
        kind=SpanKind.SERVER,
        attributes={"task_id": task_id, "attempt": attempt, "model": model},
    )


def router(engine: CostEngine, auth: BearerAuth) -> APIRouter:
    api = APIRouter(prefix=endpoints.COST_API, tags=["cost"], dependencies=[Depends(auth)])

    @api.post("/reservations", status_code=status.HTTP_201_CREATED, response_model=ReserveOut)
    async def reserve(body: ReserveIn) -> Any:
        try:
            with _span("reservation", body.task_id, body.attempt, body.model):
                held = await engine.reserve(
                    body.task_id,
                    body.attempt,
                    body.team,
                    body.model,
                    body.max_input_tokens,
                    body.max_output_tokens,
                )
        except UnknownModelError:
            return _unknown(engine)
        except RateLimited as err:
            return _rate_limited(err)
        except LimitTooSmall as err:
            return _error(422, {"detail": str(err), "scope": err.scope, "dimension": err.dimension})
        except BudgetExceeded as err:
            now = engine.clock()
            wait = math.ceil((window_end(err.line.window, now) - now).total_seconds())
            return _error(
                402,
                {
                    "detail": str(err),
                    "scope": err.line.scope,
                    "window": err.line.window,
                    "budget_usd": str(from_nano(err.line.budget_nano)),
                    "spent_usd": str(from_nano(err.spent_nano)),
                    "reserved_usd": str(from_nano(err.reserved_nano)),
                    "requested_usd": str(from_nano(err.amount_nano)),
                },
                max(1, wait),
            )
        return ReserveOut(
            reservation_id=held.reservation.id,
            created=held.reservation.created,
            requested_model=held.requested_model,
            model=held.model,
            downgraded=held.model != held.requested_model,
            reason=held.downgrade.reason if held.downgrade else None,
            max_cost_usd=held.max_cost_usd,
            expires_at=held.reservation.expires_at,
        )

    @api.post("/tool-calls", status_code=status.HTTP_201_CREATED)
    async def tool_call(body: ToolCallIn) -> Any:
        """Admit one MCP tool call against the hourly tool-call limits (429 when over)."""
        call_id = f"{body.task_id}|{body.attempt}|{uuid.uuid4().hex}"
        try:
            await engine.admit_tool_call(body.team, call_id)
        except RateLimited as err:
            return _rate_limited(err)
        return {"admitted": True}

    @api.delete("/reservations/{task_id}/{attempt}")
    async def release(
        task_id: Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")],
        attempt: Annotated[int, Path(ge=1, le=1000)],
    ) -> dict[str, bool]:
        return {"released": await engine.release(task_id, attempt)}

    @api.post("/usage", response_model=UsageOut)
    async def usage(body: UsageIn) -> Any:
        try:
            with _span("usage record", body.task_id, body.attempt, body.model):
                done = await engine.record(
                    body.task_id,
                    body.attempt,
                    body.model,
                    body.agent_type,
                    body.team,
                    body.input_tokens,
                    body.output_tokens,
                    body.at,
                )
        except UnknownModelError:
            return _unknown(engine)
        except AtOutsideWindow as err:
            return _invalid("at", str(err))
        return UsageOut(
            idempotency_key=done.idempotency_key,
            recorded=done.recorded,
            cost_usd=done.cost_usd,
            settled_reservation=done.settled_reservation,
            alerts=[
                AlertOut(
                    scope=a.scope,
                    window=a.window,
                    threshold=a.threshold,
                    spent_usd=from_nano(a.spent_nano),
                    budget_usd=from_nano(a.budget_nano),
                )
                for a in done.alerts
            ],
        )

    @api.post("/recommendations", response_model=RecommendOut)
    async def recommendation(body: RecommendIn) -> Any:
        weights = engine.cost.recommendation
        quality = (
            weights.quality_priority if body.quality_priority is None else body.quality_priority
        )
        speed = weights.speed_priority if body.speed_priority is None else body.speed_priority
        if quality + speed > 1:
            return _invalid("speed_priority", "quality_priority + speed_priority must not exceed 1")
        task = Task(
            body.task_type,
            weights.complexity if body.complexity is None else body.complexity,
            quality,
            speed,
            body.budget_usd,
        )
        try:
            answer = await engine.recommend(task, body.team)
        except NoModelFits as err:
            return _error(
                422,
                {
                    "detail": str(err),
                    "cheapest": err.cheapest,
                    "cheapest_cost_usd": str(err.cheapest_cost),
                },
            )
        chosen = answer.chosen
        return RecommendOut(
            model=answer.model,
            estimated_cost_usd=chosen.estimated_cost_usd,
            input_tokens=chosen.input_tokens,
            output_tokens=chosen.output_tokens,
            score=chosen.score,
            reasoning=answer.reasoning,
            downgraded_from=answer.downgraded_from,
            notes=answer.notes,
            alternatives=[
                CandidateOut(
                    model=c.model,
                    estimated_cost_usd=c.estimated_cost_usd,
                    input_tokens=c.input_tokens,
                    output_tokens=c.output_tokens,
                    quality=c.quality,
                    speed=c.speed,
                    score=c.score,
                )
                for c in answer.ranked
                if c.model != answer.model
            ],
            excluded=answer.excluded,
        )

    @api.get("/report", response_model=ReportOut)
    async def report(days: Annotated[int, Query(ge=1, le=366)] = 30) -> Any:
        return report_out(await engine.report(days), engine.cost.budget.daily_usd)

    @api.get("/limits", response_model=list[LimitOut])
    async def limits() -> Any:
        return [
            LimitOut(
                scope=limit.scope,
                window_seconds=WINDOW_S,
                requests=used.requests,
                tokens=used.tokens,
                cost_usd=from_nano(used.cost_nano),
                open_holds=used.holds,
                limit_requests=limit.requests,
                limit_tokens=limit.tokens,
                limit_cost_usd=None if limit.cost_nano is None else from_nano(limit.cost_nano),
            )
            for limit, used in await engine.limit_state()
        ]

    @api.get("/prices", response_model=list[PriceOut])
    async def prices() -> Any:
        return [
            PriceOut(
                model=r.model,
                provider=r.provider,
                input_per_1k_usd=r.input_per_1k,
                output_per_1k_usd=r.output_per_1k,
                source=r.source,
            )
            for r in engine.book.table(engine.clock())
        ]

    return api
