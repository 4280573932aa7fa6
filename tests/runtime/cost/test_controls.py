"""Limits, check-and-reserve and alert-once marks on a real redis-server, in one process."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from contracts.config.cost import CostConfig
from contracts.telemetry.logs import AUDIT_FIELD, AuditEvent
from runtime.cost.alerts import BudgetAlerts
from runtime.cost.budgets import BudgetLine, over_share, share_threshold
from runtime.cost.engine import CostEngine
from runtime.cost.ledger import to_nano
from runtime.cost.limits import Limit, LimitTooSmall, RateLimited, RateLimiter, scope_keys
from runtime.cost.metrics import CostMetrics
from runtime.cost.reservations import BudgetExceeded, Reservations
from runtime.service.logs import json_formatter
from runtime.service.redis import connect_url
from tests.redis_backends import Backend, backends

T = TypeVar("T")
T0 = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
MS = int(T0.timestamp() * 1000)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


redis = backends()


def test_limits_admit_exactly_the_limit_under_concurrency(redis: Backend) -> None:
    async def scenario() -> None:
        client = connect_url(redis.url)
        limiter = RateLimiter(client)
        limits = [Limit("platform", requests=25), Limit("team:research", tokens=1000)]
        outcomes = await asyncio.gather(
            *(limiter.admit(f"call-{i}", 30, 5, limits, MS + i) for i in range(100)),
            return_exceptions=True,
        )
        admitted = [o for o in outcomes if o is True]
        refused = [o for o in outcomes if isinstance(o, RateLimited)]
        # tokens: 1000 / 30 → 33 calls fit; requests: 25 → the request limit binds.
        assert len(admitted) == 25 and len(refused) == 75
        assert await limiter.used("platform") == (25, 750, 125)
        assert await limiter.used("team:research") == (25, 750, 125)
        await client.aclose()

    run(scenario())


def test_retry_after_is_when_the_oldest_calls_leave_the_hour(redis: Backend) -> None:
    async def scenario() -> None:
        client = connect_url(redis.url)
        limiter = RateLimiter(client)
        limits = [Limit("platform", requests=3, cost_nano=100)]
        await limiter.admit("a", 0, 10, limits, MS)
        await limiter.admit("b", 0, 10, limits, MS + 60_000)
        await limiter.admit("c", 0, 70, limits, MS + 120_000)
        with pytest.raises(RateLimited) as info:
            await limiter.admit("d", 0, 1, limits, MS + 600_000)
        # Requests: 3 of 3; "a" leaves at T0 + 3600 s, 600 s from now → 3000 s.
        assert (info.value.dimension, info.value.retry_after_s) == ("requests", 3000)
        # A cost of 25 needs 15 freed after 90 of 100 … "a" and "b" must leave: T0 + 3660 s.
        with pytest.raises(RateLimited) as info:
            await limiter.admit("e", 0, 25, [Limit("platform", cost_nano=100)], MS + 600_000)
        assert (info.value.dimension, info.value.retry_after_s) == ("cost", 3060)
        # Retrying at the advertised moment succeeds; a second earlier does not.
        with pytest.raises(RateLimited):
            await limiter.admit("d", 0, 1, limits, MS + 3_599_999)
        assert await limiter.admit("d", 0, 1, limits, MS + 3_600_000)
        # Admitting the same call again is a no-op, and a refused call counted nowhere.
        assert not await limiter.admit("d", 0, 1, limits, MS + 3_600_000)
        assert await limiter.used("platform") == (3, 0, 81)
        with pytest.raises(LimitTooSmall, match="exceeds platform's hourly limit of 100"):
            await limiter.admit("huge", 0, 101, [Limit("platform", cost_nano=100)], MS)
        assert await limiter.release("d", ["platform"], MS + 3_600_000) == 1
        assert await limiter.used("platform") == (2, 0, 80)
        await client.aclose()

    run(scenario())


LINES = [BudgetLine("platform", "day", to_nano(Decimal(100)))]


def test_fifty_parallel_reservations_at_95_percent_stay_within_budget(
    redis: Backend,
) -> None:
    cost = CostConfig.model_validate({"budget": {"dailyUsd": "100", "monthlyUsd": "3000"}})

    async def scenario() -> None:
        client = connect_url(redis.url)
        engine = CostEngine(client, cost, CostMetrics(CollectorRegistry()), clock=lambda: T0)
        # Spend 95 USD for real through the ledger: 95 calls of gpt-4o at exactly 1 USD
        # would need tokens to match; instead record calls until 95 % is reached exactly.
        unit = engine.book.cost("gpt-4o", 100_000, 75_000, at=T0)  # 0.25 + 0.75 = 1 USD
        assert unit == Decimal(1)
        for i in range(95):
            await engine.record(f"old-{i}", 1, "gpt-4o", "coder", "research", 100_000, 75_000)
        max_in, max_out = 40_000, 30_000  # at most 0.4 USD per call
        call_max = engine.book.cost("gpt-4o", max_in, max_out, at=T0)
        results = await asyncio.gather(
            *(
                engine.reserve(f"t-{i}", 1, "research", "gpt-4o", max_in, max_out)
                for i in range(50)
            ),
            return_exceptions=True,
        )
        held = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BudgetExceeded)]
        assert len(held) + len(refused) == 50
        assert len(held) == int(Decimal(5) / call_max)  # 12 × 0.4 = 4.8 ≤ 5
        # Every admitted call now spends its maximum: the budget holds.
        for r in held:
            task_id, attempt = r.reservation.id.rsplit(":", 1)
            done = await engine.record(
                task_id, int(attempt), "gpt-4o", "coder", "research", max_in, max_out
            )
            assert done.settled_reservation
        spent = (await engine.ledger.totals("day", T0)).cost_usd
        assert spent <= Decimal(100) + call_max
        assert await engine.reservations.reserved("platform") == 0
        await client.aclose()

    run(scenario())


def test_unconfirmed_reservation_is_released_after_its_timeout(redis: Backend) -> None:
    async def scenario() -> None:
        client = connect_url(redis.url)
        book = Reservations(client)
        first = await book.reserve("task-1:1", "research", to_nano(Decimal(80)), LINES, T0, 60)
        assert first.created
        again = await book.reserve("task-1:1", "research", to_nano(Decimal(80)), LINES, T0, 60)
        assert not again.created  # a retried check-and-reserve holds nothing more
        assert await book.reserved("platform") == to_nano(Decimal(80))
        with pytest.raises(BudgetExceeded) as info:
            await book.reserve("task-2:1", "research", to_nano(Decimal(30)), LINES, T0, 60)
        assert info.value.reserved_nano == to_nano(Decimal(80))
        # Still held one second before the timeout …
        later = T0 + dt.timedelta(seconds=59)
        with pytest.raises(BudgetExceeded):
            await book.reserve("task-2:1", "research", to_nano(Decimal(30)), LINES, later, 60)
        # … and released at it, by the next reservation.
        at_timeout = T0 + dt.timedelta(seconds=60)
        second = await book.reserve(
            "task-2:1", "research", to_nano(Decimal(30)), LINES, at_timeout, 60
        )
        assert second.created and second.expired_released == 1
        assert await book.held("task-1:1") is None
        assert await book.reserved("platform") == to_nano(Decimal(30))
        assert await book.reserved("team:research") == to_nano(Decimal(30))
        # A sweep releases lapsed ones without a new reservation; release gives one back.
        assert await book.sweep(at_timeout + dt.timedelta(seconds=60)) == 1
        assert await book.reserved("platform") == 0
        assert not await book.release("task-2:1")
        await client.aclose()

    run(scenario())


def test_alerts_fire_once_per_threshold_and_window_across_restarts(redis: Backend) -> None:
    line = BudgetLine("team:research", "day", to_nano(Decimal(100)))

    async def scenario() -> None:
        client = connect_url(redis.url)
        alerts = BudgetAlerts(client, [0.5, 0.8, 0.9, 1.0])
        assert await alerts.check([(line, to_nano(Decimal(49)))], T0) == []
        fired = await alerts.check([(line, to_nano(Decimal(85)))], T0)
        assert [a.threshold for a in fired] == [0.5, 0.8]
        assert await alerts.check([(line, to_nano(Decimal(86)))], T0) == []
        # A fresh instance (a restarted engine) remembers nothing locally, Redis does.
        restarted = BudgetAlerts(client, [0.5, 0.8, 0.9, 1.0])
        fired = await restarted.check([(line, to_nano(Decimal(100)))], T0)
        assert [a.threshold for a in fired] == [0.9, 1.0]
        # The next day is a new window.
        tomorrow = T0 + dt.timedelta(days=1)
        fired = await restarted.check([(line, to_nano(Decimal(50)))], tomorrow)
        assert [(a.threshold, a.bucket) for a in fired] == [(0.5, "2026-11-25")]
        events = await restarted.events()
        assert [(e["threshold"], e["bucket"]) for e in events] == [
            ("0.5", "2026-11-24"),
            ("0.8", "2026-11-24"),
            ("0.9", "2026-11-24"),
            ("1.0", "2026-11-24"),
            ("0.5", "2026-11-25"),
        ]
        assert events[1] == {
            "scope": "team:research",
            "window": "day",
            "bucket": "2026-11-24",
            "threshold": "0.8",
            "spent_usd": "85",
            "budget_usd": "100",
        }
        await client.aclose()

    run(scenario())


def test_downgrade_once_past_the_share_is_visible_and_counted(
    redis: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentops.cost")
    cost = CostConfig.model_validate(
        {"budget": {"dailyUsd": "10", "monthlyUsd": "300"}, "downgradeAt": 0.9}
    )

    async def scenario() -> None:
        client = connect_url(redis.url)
        registry = CollectorRegistry()
        engine = CostEngine(client, cost, CostMetrics(registry), clock=lambda: T0)
        before = await engine.reserve("t-1", 1, "research", "gpt-5", 1000, 1000)
        assert (before.model, before.downgrade) == ("gpt-5", None)
        await engine.release("t-1", 1)
        for i in range(9):  # 9 USD of 10: 90 %
            await engine.record(f"old-{i}", 1, "gpt-4o", "coder", "research", 100_000, 75_000)
        after = await engine.reserve("t-2", 1, "research", "gpt-5", 1000, 1000)
        assert (after.requested_model, after.model) == ("gpt-5", "gpt-5-mini")
        assert after.downgrade is not None and after.downgrade.scope == "platform"
        assert "past the downgrade share 0.9" in after.downgrade.reason
        assert after.max_cost_usd == engine.book.cost("gpt-5-mini", 1000, 1000, at=T0)
        labels = {"requested": "gpt-5", "chosen": "gpt-5-mini", "scope": "platform"}
        assert registry.get_sample_value("agentops_model_downgrades_total", labels) == 1
        # A model with no downgrade target is used as asked.
        same = await engine.reserve("t-3", 1, "research", "gpt-4o", 1000, 1000)
        assert same.model == "gpt-4o" and same.downgrade is None
        await client.aclose()

    run(scenario())
    # The downgrade is one audit event, in the line the runtime's JSON formatter writes.
    lines = [json.loads(json_formatter().format(r)) for r in caplog.records]
    events = [line for line in lines if line.get(AUDIT_FIELD) == AuditEvent.DOWNGRADE]
    assert [(e["requested"], e["model"]) for e in events] == [("gpt-5", "gpt-5-mini")]


class Clock:
    """A clock the test moves: the engine's `now` for limits, holds and the usage window."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


HOURLY = CostConfig.model_validate(
    {
        "budget": {"dailyUsd": "1000", "monthlyUsd": "10000"},
        "rateLimits": {"overall": {"costUsd": "1"}},
        "reservationTimeoutSeconds": 60,
    }
)
# gpt-4o at 2.50 / 10.00 USD per million: the most a call may cost is 0.1 USD, it costs 0.01.
MAX_IN, MAX_OUT, REAL_IN, REAL_OUT = 20_000, 5_000, 2_000, 500


def test_hourly_usd_admits_work_up_to_its_actual_spend(redis: Backend) -> None:
    async def scenario() -> None:
        client = connect_url(redis.url)
        clock = Clock(T0)
        engine = CostEngine(client, HOURLY, CostMetrics(CollectorRegistry()), clock=clock)
        assert engine.book.cost("gpt-4o", MAX_IN, MAX_OUT) == Decimal("0.1")
        assert engine.book.cost("gpt-4o", REAL_IN, REAL_OUT) == Decimal("0.01")
        admitted, refusal = 0, None
        while refusal is None:  # one call a second, each recorded before the next
            clock.at = T0 + dt.timedelta(seconds=admitted)
            key = f"t-{admitted}"
            try:
                await engine.reserve(key, 1, "research", "gpt-4o", MAX_IN, MAX_OUT)
            except RateLimited as err:
                refusal = err
                break
            admitted += 1
            await engine.record(key, 1, "gpt-4o", "coder", "research", REAL_IN, REAL_OUT)
        # Held at its maximum, a call would stop the hour at 10 calls (1 / 0.1). Settled to the
        # actual 0.01, calls are admitted while actual spend + one maximum fits: 0.90 + 0.1.
        assert admitted == 91
        spent = (await engine.ledger.totals("hour", T0)).cost_usd
        assert spent == Decimal("0.91") >= Decimal(1) - Decimal("0.1")
        [(_, used)] = await engine.limit_state()
        assert (used.requests, used.cost_nano, used.holds) == (91, to_nano(spent), 0)
        assert used.tokens == 91 * (REAL_IN + REAL_OUT)
        # 0.01 must leave for the next maximum to fit: the first call, at T0 + 3600 s.
        assert (refusal.dimension, refusal.retry_after_s) == ("cost", 3600 - 91)
        clock.at = T0 + dt.timedelta(seconds=3599)
        with pytest.raises(RateLimited):
            await engine.reserve("late", 1, "research", "gpt-4o", MAX_IN, MAX_OUT)
        clock.at = T0 + dt.timedelta(seconds=3600)
        assert (await engine.reserve("late", 1, "research", "gpt-4o", MAX_IN, MAX_OUT)).model
        await client.aclose()

    run(scenario())


def test_release_and_lapse_return_everything_and_late_usage_counts_its_actual(
    redis: Backend,
) -> None:
    async def scenario() -> None:
        client = connect_url(redis.url)
        clock = Clock(T0)
        engine = CostEngine(client, HOURLY, CostMetrics(CollectorRegistry()), clock=clock)

        async def window() -> tuple[int, int, int, int]:
            [(_, used)] = await engine.limit_state()
            return used.requests, used.tokens, used.cost_nano, used.holds

        await engine.reserve("a", 1, "research", "gpt-4o", MAX_IN, MAX_OUT)
        assert await window() == (1, MAX_IN + MAX_OUT, to_nano(Decimal("0.1")), 1)
        # Released without a call: everything returns, the request too, and the budget hold.
        assert await engine.release("a", 1)
        assert await window() == (0, 0, 0, 0)
        assert await engine.reservations.reserved("platform") == 0
        # A hold never settled lapses after the reservation timeout (60 s) and returns all.
        await engine.reserve("b", 1, "research", "gpt-4o", MAX_IN, MAX_OUT)
        clock.at = T0 + dt.timedelta(seconds=59)
        assert (await window())[3] == 1
        clock.at = T0 + dt.timedelta(seconds=60)
        assert await window() == (0, 0, 0, 0)
        # Its usage, arriving late, still counts: its actual amount, from now.
        clock.at = T0 + dt.timedelta(seconds=90)
        await engine.record("b", 1, "gpt-4o", "coder", "research", REAL_IN, REAL_OUT)
        assert await window() == (1, REAL_IN + REAL_OUT, to_nano(Decimal("0.01")), 0)
        # A replayed record changes nothing; a record without a reservation counts as a call.
        await engine.record("b", 1, "gpt-4o", "coder", "research", REAL_IN, REAL_OUT)
        await engine.record("c", 1, "gpt-4o", "coder", "research", REAL_IN, REAL_OUT)
        assert await window() == (2, 2 * (REAL_IN + REAL_OUT), to_nano(Decimal("0.02")), 0)
        await client.aclose()

    run(scenario())


def test_a_settled_call_counts_its_actual_amount_whatever_it_is_and_its_hour_stays_kept(
    redis: Backend,
) -> None:
    """A hold settles to what the call really used: less than its maximum, exactly it (the
    same member), or more (a handler over its estimate); the window's keys still live past
    the hour the call was admitted in."""

    async def scenario() -> None:
        client = connect_url(redis.url)
        clock = Clock(T0)
        engine = CostEngine(client, HOURLY, CostMetrics(CollectorRegistry()), clock=clock)
        maximum = engine.book.cost("gpt-4o", MAX_IN, MAX_OUT)
        used_tokens = [(REAL_IN, REAL_OUT), (MAX_IN, MAX_OUT), (MAX_IN + 4_000, MAX_OUT)]
        for i in range(len(used_tokens)):
            await engine.reserve(f"s-{i}", 1, "research", "gpt-4o", MAX_IN, MAX_OUT)
        [(limit, held)] = await engine.limit_state()
        assert (held.requests, held.cost_nano, held.holds) == (3, 3 * to_nano(maximum), 3)
        clock.at = T0 + dt.timedelta(seconds=30)
        for i, (tokens_in, tokens_out) in enumerate(used_tokens):
            await engine.record(f"s-{i}", 1, "gpt-4o", "coder", "research", tokens_in, tokens_out)
        actual = [engine.book.cost("gpt-4o", a, b) for a, b in used_tokens]
        [(_, used)] = await engine.limit_state()
        assert (used.requests, used.holds) == (3, 0)
        assert used.tokens == sum(a + b for a, b in used_tokens)
        assert used.cost_nano == sum(to_nano(c) for c in actual)
        assert actual[0] < maximum == actual[1] < actual[2]
        # Each call is still counted from its admission: it leaves the window an hour after.
        clock.at = T0 + dt.timedelta(seconds=3599)
        [(_, later)] = await engine.limit_state()
        assert later.requests == 3
        clock.at = T0 + dt.timedelta(seconds=3600)
        [(_, gone)] = await engine.limit_state()
        assert (gone.requests, gone.tokens, gone.cost_nano) == (0, 0, 0)
        # Until then its keys live: none expires before the last member leaves the window.
        for key in scope_keys([limit.scope]):
            ttl_ms = await client.pttl(key)
            assert ttl_ms == -2 or ttl_ms > 3_500_000, (key, ttl_ms)
        await client.aclose()

    run(scenario())


def test_concurrent_calls_settle_the_window_to_exactly_the_ledger(redis: Backend) -> None:
    async def scenario() -> None:
        clients = [connect_url(redis.url) for _ in range(3)]
        # Three engines (as replicas) on one Redis, calls of random real sizes in parallel.
        engines = [
            CostEngine(c, HOURLY, CostMetrics(CollectorRegistry()), clock=lambda: T0)
            for c in clients
        ]

        async def call(i: int) -> bool:
            engine = engines[i % 3]
            try:
                await engine.reserve(f"p-{i}", 1, "research", "gpt-4o", MAX_IN, MAX_OUT)
            except RateLimited:
                return False
            if i % 7 == 0:  # some calls never happen
                await engine.release(f"p-{i}", 1)
                return False
            await engine.record(
                f"p-{i}", 1, "gpt-4o", "coder", "research", REAL_IN * (1 + i % 4), 0
            )
            return True

        async def worker(w: int) -> list[bool]:  # 30 workers, 10 calls each, one at a time
            return [await call(w * 10 + j) for j in range(10)]

        done = [
            ok for calls in await asyncio.gather(*(worker(w) for w in range(30))) for ok in calls
        ]
        spent = (await engines[0].ledger.totals("hour", T0)).cost_usd
        [(_, used)] = await engines[0].limit_state()
        assert used.holds == 0 and used.requests == sum(done)
        assert used.cost_nano == to_nano(spent) <= to_nano(Decimal(1))
        # Settled to actuals, far more than the 10 maxima that fit the hour were admitted.
        assert sum(done) > 10
        for c in clients:
            await c.aclose()

    run(scenario())


def test_report_names_a_substitute_only_where_it_would_have_cost_less(
    redis: Backend,
) -> None:
    # gpt-5-mini at 0.0001 / 0.0102 USD per 1K: cheaper than gpt-5 (0.00125 / 0.01) for every
    # task type's estimate (the config accepts it), dearer for output-only usage.
    override = {
        "model": "gpt-5-mini",
        "inputPer1kUsd": "0.0001",
        "outputPer1kUsd": "0.0102",
        "effectiveFrom": "2020-01-01",
    }
    cost = CostConfig.model_validate(
        {"budget": {"dailyUsd": "100", "monthlyUsd": "300"}, "priceOverrides": [override]}
    )

    async def scenario(input_tokens: int, output_tokens: int) -> list[str]:
        client = connect_url(redis.url)
        await client.flushall()
        engine = CostEngine(client, cost, CostMetrics(CollectorRegistry()), clock=lambda: T0)
        for i in range(10):
            await engine.record(
                f"r-{i}", 1, "gpt-5", "coder", "research", input_tokens, output_tokens
            )
        report = await engine.report(days=7)
        await client.aclose()
        [substitution] = [s for s in report.suggestions if s.kind == "model_substitution"]
        assert substitution.potential_savings_usd is None or substitution.potential_savings_usd > 0
        return [substitution.action, str(substitution.potential_savings_usd)]

    # Output only: gpt-5-mini would have cost 0.102 vs 0.1 USD — not suggested.
    assert run(scenario(0, 1000)) == ["route more of its tasks to a cheaper model", "None"]
    # Input-heavy: it saves 10 × (0.00125 − 0.0001) = 0.0115 USD — suggested with that figure.
    action, savings = run(scenario(1000, 0))
    assert "gpt-5-mini" in action and Decimal(savings) == Decimal("0.0115")


def test_a_call_over_its_budget_holds_nothing_against_the_hourly_limits(redis: Backend) -> None:
    # The check-and-reserve is one script: a budget's refusal leaves no limit hold behind
    # (before, the limits admitted the call and a second round trip took it back).
    tight = CostConfig.model_validate(
        {
            "budget": {"dailyUsd": "0.15", "monthlyUsd": "10000"},
            "rateLimits": {"overall": {"costUsd": "1"}},
        }
    )

    async def scenario() -> None:
        client = connect_url(redis.url)
        engine = CostEngine(client, tight, CostMetrics(CollectorRegistry()), clock=Clock(T0))
        await engine.reserve("a", 1, "research", "gpt-4o", MAX_IN, MAX_OUT)  # 0.1 of 0.15
        with pytest.raises(BudgetExceeded):
            await engine.reserve("b", 1, "research", "gpt-4o", MAX_IN, MAX_OUT)
        [(_, used)] = await engine.limit_state()
        assert (used.requests, used.cost_nano, used.holds) == (1, to_nano(Decimal("0.1")), 1)
        assert await engine.reservations.reserved("platform") == to_nano(Decimal("0.1"))
        assert await engine.reservations.held("b:1") is None
        await client.aclose()

    run(scenario())


@pytest.mark.parametrize("share", [0.8, 0.95, 0.333, 1.0])
@pytest.mark.parametrize("budget", [1, 3, 7, 100, 999_999_999, 10**15 + 7])
def test_the_scripts_downgrade_threshold_is_the_exact_share(share: float, budget: int) -> None:
    # The script compares whole nano-dollars with this threshold; over_share compares decimals.
    edge = share_threshold(budget, share)
    assert over_share(edge, budget, share)
    assert not over_share(edge - 1, budget, share)
    assert share_threshold(0, share) == -1
