"""Limits, check-and-reserve and alert-once marks on a real redis-server, in one process."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from infra.config.cost import CostConfig
from runtime.cost.alerts import BudgetAlerts
from runtime.cost.budgets import BudgetLine
from runtime.cost.engine import CostEngine
from runtime.cost.ledger import to_nano
from runtime.cost.limits import Limit, LimitTooSmall, RateLimited, RateLimiter
from runtime.cost.metrics import CostMetrics
from runtime.cost.reservations import BudgetExceeded, Reservations
from tests.servers import RedisServer, redis_server

T = TypeVar("T")
T0 = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
MS = int(T0.timestamp() * 1000)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def test_limits_admit_exactly_the_limit_under_concurrency(redis: RedisServer) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis.url)
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


def test_retry_after_is_when_the_oldest_calls_leave_the_hour(redis: RedisServer) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis.url)
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
    redis: RedisServer,
) -> None:
    cost = CostConfig.model_validate({"budget": {"dailyUsd": "100", "monthlyUsd": "3000"}})

    async def scenario() -> None:
        client = Redis.from_url(redis.url)
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


def test_unconfirmed_reservation_is_released_after_its_timeout(redis: RedisServer) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis.url)
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


def test_alerts_fire_once_per_threshold_and_window_across_restarts(redis: RedisServer) -> None:
    line = BudgetLine("team:research", "day", to_nano(Decimal(100)))

    async def scenario() -> None:
        client = Redis.from_url(redis.url)
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


def test_downgrade_once_past_the_share_is_visible_and_counted(redis: RedisServer) -> None:
    cost = CostConfig.model_validate(
        {"budget": {"dailyUsd": "10", "monthlyUsd": "300"}, "downgradeAt": 0.9}
    )

    async def scenario() -> None:
        client = Redis.from_url(redis.url)
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
