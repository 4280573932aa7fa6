"""The cost engine's operations, independent of HTTP: record, check-and-reserve, release,
recommend, report, and the gauges the alert catalogue reads.

The API (api.py) is a thin layer over this class; the CLI's report and the benchmark use it
straight on Redis.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from redis.asyncio import Redis

from contracts.config.cost import CostConfig
from contracts.prices import PriceBook
from contracts.settings.cost import price_book
from contracts.telemetry.logs import AuditEvent
from runtime.cost import keys
from runtime.cost.alerts import BudgetAlert, BudgetAlerts
from runtime.cost.analysis import ModelSpend, SpendAnalysis, analyse
from runtime.cost.budgets import (
    BudgetLine,
    all_budget_lines,
    budget_lines,
    over_share,
    share_threshold,
)
from runtime.cost.ledger import Ledger, UsageRecord, from_nano, idempotency_key, to_nano
from runtime.cost.limits import (
    Limit,
    LimitTooSmall,
    RateLimited,
    RateLimiter,
    Used,
    limit_from_config,
    limited,
)
from runtime.cost.metrics import CostMetrics
from runtime.cost.recommend import Recommendation, Task, recommend
from runtime.cost.reservations import BudgetExceeded, CallMaximum, Reservation, Reservations
from runtime.cost.tool_limits import ToolCallLimiter, ToolLimit
from runtime.service.logs import audit
from runtime.service.redis import NO_REPLICAS, Replication

__all__ = ["AtOutsideWindow", "CostEngine", "Downgrade", "Recorded", "Reserved", "UsageWindow"]

log = logging.getLogger("agentops.cost")

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass(frozen=True)
class UsageWindow:
    """How far a usage record's `at` may lie from the engine's now: a call that ended long
    ago or in the future is refused, never charged to another hour, day or month."""

    max_age_s: int = 3600
    max_ahead_s: int = 300

    def check(self, at: dt.datetime, now: dt.datetime) -> None:
        earliest = now - dt.timedelta(seconds=self.max_age_s)
        latest = now + dt.timedelta(seconds=self.max_ahead_s)
        # Compared as offsets from now: year 1 or 9999 in any zone overflows nothing.
        if not earliest <= at <= latest:
            raise AtOutsideWindow(self, earliest, latest)


class AtOutsideWindow(ValueError):
    """A usage `at` outside the configured window around now. The message names the window,
    never the submitted value."""

    def __init__(self, window: UsageWindow, earliest: dt.datetime, latest: dt.datetime) -> None:
        self.window = window
        self.earliest = earliest
        self.latest = latest
        super().__init__(
            f"must lie within {window.max_age_s} s before and {window.max_ahead_s} s after the "
            f"cost engine's time: between {earliest.isoformat()} and {latest.isoformat()}"
        )


@dataclass(frozen=True)
class Downgrade:
    """Why models are being downgraded: the first budget past `downgradeAt`."""

    scope: str
    window: str
    used_nano: int
    budget_nano: int
    share: float

    @property
    def reason(self) -> str:
        used = from_nano(self.used_nano)
        budget = from_nano(self.budget_nano)
        return (
            f"{self.scope} has used {used} of its {budget} USD {self.window} budget "
            f"(spent + reserved), past the downgrade share {self.share}"
        )


@dataclass(frozen=True)
class _Terms:
    """What a team's calls are held to (CostEngine.terms)."""

    lines: list[BudgetLine]
    thresholds: list[int]  # per line: the used nano-dollars that downgrade (-1: never)
    limits: list[Limit]  # the limited scopes

    @property
    def scopes(self) -> list[str]:
        return [lim.scope for lim in self.limits]


@dataclass(frozen=True)
class Recorded:
    idempotency_key: str
    recorded: bool
    cost_usd: Decimal
    settled_reservation: bool
    alerts: list[BudgetAlert]


@dataclass(frozen=True)
class Reserved:
    reservation: Reservation
    requested_model: str
    model: str
    downgrade: Downgrade | None
    max_cost_usd: Decimal


class CostEngine:
    def __init__(
        self,
        redis: Redis,
        cost: CostConfig,
        metrics: CostMetrics,
        clock: Clock = _utcnow,
        book: PriceBook | None = None,
        usage_window: UsageWindow | None = None,
        replication: Replication = NO_REPLICAS,
    ) -> None:
        self.redis = redis
        self.cost = cost
        self.metrics = metrics
        self.clock = clock
        self.book = book or price_book(cost)
        self.usage_window = usage_window or UsageWindow()
        self.ledger = Ledger(redis, replication)
        self.limiter = RateLimiter(redis)
        self.reservations = Reservations(redis, replication)
        self.tool_limiter = ToolCallLimiter(redis)
        self.alerts = BudgetAlerts(redis, cost.alert_thresholds)
        self._terms: dict[str | None, _Terms] = {}
        for line in all_budget_lines(cost):
            metrics.budget.labels(line.scope, line.window).set(float(from_nano(line.budget_nano)))

    # --- limits and budgets ---------------------------------------------------------------

    def limits(self, team: str) -> list[Limit]:
        found = [limit_from_config(keys.PLATFORM, self.cost.rate_limits.overall)]
        if team in self.cost.rate_limits.teams:
            found.append(
                limit_from_config(keys.team_scope(team), self.cost.rate_limits.teams[team])
            )
        return found

    def terms(self, team: str | None) -> _Terms:
        """A team's budget lines, downgrade thresholds and limited scopes, from the config (it
        does not change in the engine's life): worked out once per configured team, and once
        for every team the config does not name (they share the platform's)."""
        named = team in self.cost.team_budgets or team in self.cost.rate_limits.teams
        key = team if named else None
        found = self._terms.get(key)
        if found is None:
            lines = budget_lines(self.cost, key)
            thresholds = [share_threshold(ln.budget_nano, self.cost.downgrade_at) for ln in lines]
            found = self._terms[key] = _Terms(lines, thresholds, limited(self.limits(key or "")))
        return found

    async def admit_tool_call(self, team: str, call_id: str) -> None:
        """Count one MCP tool call against the platform's and the team's hourly limits."""
        rate = self.cost.rate_limits
        limits = [ToolLimit(keys.PLATFORM, rate.overall.tool_calls)]
        if team in rate.teams:
            limits.append(ToolLimit(keys.team_scope(team), rate.teams[team].tool_calls))
        try:
            await self.tool_limiter.admit(limits, call_id, _ms(self.clock()))
        except RateLimited as err:
            self.metrics.rate_limited.labels(err.scope, err.dimension).inc()
            raise

    def all_limits(self) -> list[Limit]:
        """Every scope with a configured hourly limit: where a call can hold something."""
        rate = self.cost.rate_limits
        return limited(
            [
                limit_from_config(keys.PLATFORM, rate.overall),
                *(limit_from_config(keys.team_scope(t), lim) for t, lim in rate.teams.items()),
            ]
        )

    async def limit_state(self) -> list[tuple[Limit, Used]]:
        """What every limited scope's hourly window counts now, beside its limits."""
        found = self.all_limits()
        used = await self.limiter.state([lim.scope for lim in found], _ms(self.clock()))
        return list(zip(found, used, strict=True))

    async def downgrade_due(self, team: str | None) -> Downgrade | None:
        """The first budget whose spent + reserved has reached `downgradeAt`, if any."""
        lines = self.terms(team).lines
        now = self.clock()
        windows = keys.buckets(now)
        pipe = self.redis.pipeline(transaction=False)
        for line in lines:
            pipe.hget(keys.usage(line.window, windows[line.window]), keys.ledger_field(line.scope))
            pipe.hget(keys.RESERVED, line.scope)
        values = await pipe.execute()
        for i, line in enumerate(lines):
            used = int(values[2 * i] or 0) + max(0, int(values[2 * i + 1] or 0))
            if over_share(used, line.budget_nano, self.cost.downgrade_at):
                return Downgrade(
                    line.scope, line.window, used, line.budget_nano, self.cost.downgrade_at
                )
        return None

    # --- operations ---------------------------------------------------------------------

    async def record(
        self,
        task_id: str,
        attempt: int,
        model: str,
        agent_type: str,
        team: str,
        input_tokens: int,
        output_tokens: int,
        at: dt.datetime | None = None,
        call: int = 1,
    ) -> Recorded:
        """Record one call's usage (priced here), settle its reservation and its hourly-limit
        hold to the actual amount, fire due alerts.

        Raises AtOutsideWindow for an `at` outside the usage window, UnknownModelError.
        """
        now = self.clock()
        at = at or now
        self.usage_window.check(at, now)
        cost = self.book.cost(model, input_tokens, output_tokens, at=at)
        key = idempotency_key(task_id, attempt, call)
        usage = UsageRecord(key, model, agent_type, team, input_tokens, output_tokens, cost, at)
        terms = self.terms(team)
        done = await self.ledger.record(usage, terms.scopes, _ms(now))
        if done.settled_reservation:
            self.metrics.reservations.labels("settled").inc()
        fired: list[BudgetAlert] = []
        if done.recorded:
            self.metrics.tokens.labels(agent_type, model, "input").inc(input_tokens)
            self.metrics.tokens.labels(agent_type, model, "output").inc(output_tokens)
            self.metrics.cost.labels(agent_type, model, team).inc(float(cost))
            spent = {
                (keys.PLATFORM, "day"): done.day_total,
                (keys.PLATFORM, "month"): done.month_total,
                (keys.team_scope(team), "day"): done.day_team,
                (keys.team_scope(team), "month"): done.month_team,
            }
            lines = terms.lines
            for line in lines:
                self.metrics.spend.labels(line.scope, line.window).set(
                    float(from_nano(spent[(line.scope, line.window)]))
                )
            fired = await self.alerts.check(
                [(line, spent[(line.scope, line.window)]) for line in lines], at
            )
            for alert in fired:
                self.metrics.alerts.labels(alert.scope, alert.window, alert.threshold_label).inc()
                log.warning(
                    "budget alert: %s reached %s of its %s budget (%s of %s USD)",
                    alert.scope,
                    alert.threshold_label,
                    alert.window,
                    from_nano(alert.spent_nano),
                    from_nano(alert.budget_nano),
                    extra=audit(AuditEvent.BUDGET_ALERT, event="budget_alert", **alert.as_event()),
                )
        return Recorded(key, done.recorded, cost, done.settled_reservation, fired)

    def _call_maximum(
        self, call_id: str, team: str, model: str, max_in: int, max_out: int, now: dt.datetime
    ) -> CallMaximum:
        """What the check-and-reserve script needs: both models' maxima, budgets, limits."""
        target = self.cost.downgrade.get(model)
        terms = self.terms(team)
        return CallMaximum(
            reservation_id=call_id,
            team=team,
            tokens=max_in + max_out,
            amount_nano=to_nano(self.book.cost(model, max_in, max_out, at=now)),
            target_nano=None
            if target is None
            else to_nano(self.book.cost(target, max_in, max_out, at=now)),
            lines=terms.lines,
            thresholds=terms.thresholds,
            limits=terms.limits,
        )

    async def reserve(
        self,
        task_id: str,
        attempt: int,
        team: str,
        model: str,
        max_input_tokens: int,
        max_output_tokens: int,
        call: int = 1,
    ) -> Reserved:
        """Check the limits and budgets and hold the call's maximum cost until it is recorded.

        Raises UnknownModelError, RateLimited, LimitTooSmall or BudgetExceeded.
        """
        requested = model
        target = self.cost.downgrade.get(model)
        now = self.clock()
        maximum = self._call_maximum(
            idempotency_key(task_id, attempt, call),
            team,
            model,
            max_input_tokens,
            max_output_tokens,
            now,
        )
        try:
            checked = await self.reservations.check_and_reserve(
                maximum, now, self.cost.reservation_timeout_seconds, self.limiter.window_ms
            )
        except (RateLimited, LimitTooSmall) as err:
            self.metrics.rate_limited.labels(err.scope, err.dimension).inc()
            self.metrics.reservations.labels("refused_rate").inc()
            raise
        except BudgetExceeded:
            self.metrics.reservations.labels("refused_budget").inc()
            raise
        held = checked.reservation
        if held.expired_released:
            self.metrics.reservations.labels("expired").inc(held.expired_released)
        self.metrics.reservations.labels("reserved" if held.created else "duplicate").inc()
        due = None
        if checked.downgraded and target is not None and checked.due is not None:
            model, line = target, checked.due
            due = Downgrade(
                line.scope, line.window, checked.due_used_nano, line.budget_nano,
                self.cost.downgrade_at,
            )  # fmt: skip
            if held.created:
                self.metrics.downgrades.labels(requested, model, due.scope).inc()
                log.info(
                    "downgraded %s → %s for %s: %s",
                    requested,
                    model,
                    held.id,
                    due.reason,
                    extra=audit(AuditEvent.DOWNGRADE, requested=requested, model=model),
                )
        return Reserved(held, requested, model, due, from_nano(held.amount_nano))

    async def release(self, task_id: str, attempt: int, call: int = 1) -> bool:
        """The call did not happen: give back its budget reservation and everything it holds
        against the hourly limits, in every limited scope."""
        key = idempotency_key(task_id, attempt, call)
        scopes = [lim.scope for lim in self.all_limits()]
        held_limits = await self.limiter.release(key, scopes, _ms(self.clock()))
        released = await self.reservations.release(key) or held_limits > 0
        if released:
            self.metrics.reservations.labels("released").inc()
        return released

    async def recommend(self, task: Task, team: str | None) -> Recommendation:
        due = await self.downgrade_due(team)
        answer = recommend(
            task,
            self.cost.models,
            lambda model, tokens_in, tokens_out: self.book.cost(
                model, tokens_in, tokens_out, at=self.clock()
            ),
            self.cost.recommendation,
            downgrade=self.cost.downgrade if due is not None else None,
            downgrade_reason=due.reason if due is not None else "",
        )
        if answer.downgraded_from is not None and due is not None:
            self.metrics.downgrades.labels(answer.downgraded_from, answer.model, due.scope).inc()
        return answer

    async def report(self, days: int = 30, as_of: dt.date | None = None) -> SpendAnalysis:
        """The spend analysis of the platform from the ledger, over `days` days to `as_of`."""
        if days < 1:
            raise ValueError("days must be at least 1")
        today = as_of or self.clock().date()
        first = today - dt.timedelta(days=days - 1)
        series = await self.ledger.daily_series(first, today)
        at = dt.datetime(today.year, today.month, today.day, 12, tzinfo=dt.UTC)
        month = await self.ledger.totals("month", at)
        by_model: dict[str, ModelSpend] = {}
        for name, spend in month.by_model.items():
            target = self.cost.downgrade.get(name)
            substitute_cost = None
            if target is not None:
                tokens_in, tokens_out = month.tokens_by_model.get(name, (0, 0))
                substitute_cost = self.book.cost(target, tokens_in, tokens_out, at=at)
            by_model[name] = ModelSpend(spend, target, substitute_cost)
        return analyse(series, month.cost_usd, self.cost.budget.monthly_usd, by_model)

    async def refresh_gauges(self) -> None:
        """Re-read every budgeted scope's spend: other replicas record too."""
        now = self.clock()
        windows = keys.buckets(now)
        lines: list[BudgetLine] = all_budget_lines(self.cost)
        pipe = self.redis.pipeline(transaction=False)
        for line in lines:
            pipe.hget(keys.usage(line.window, windows[line.window]), keys.ledger_field(line.scope))
        values = await pipe.execute()
        for line, value in zip(lines, values, strict=True):
            self.metrics.spend.labels(line.scope, line.window).set(
                float(from_nano(int(value or 0)))
            )

    async def sweep(self) -> int:
        released = await self.reservations.sweep(self.clock())
        if released:
            self.metrics.reservations.labels("expired").inc(released)
        return released
