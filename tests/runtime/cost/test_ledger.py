"""The usage ledger on a real redis-server: exact sums, replays, windows, concurrency."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
from decimal import Decimal
from pathlib import Path

import pytest

from contracts.prices import PriceBook, PricedModel
from runtime.cost.ledger import Ledger, UsageRecord, to_nano
from runtime.service.redis import connect_url
from tests.redis_backends import Backend, backends

AT = dt.datetime(2026, 11, 24, 13, 30, tzinfo=dt.UTC)
BOOK = PriceBook([PricedModel("gpt-5", "openai"), PricedModel("gpt-4o", "openai")])


redis = backends()


def usage(
    i: int, model: str = "gpt-5", team: str = "research", at: dt.datetime = AT
) -> UsageRecord:
    tokens_in, tokens_out = 1000 + i, 300 + 7 * i
    return UsageRecord(
        idempotency_key=f"task-{i}:1",
        model=model,
        agent_type="code-generator",
        team=team,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=BOOK.cost(model, tokens_in, tokens_out, at=at),
        at=at,
    )


def test_sums_are_exact_and_replays_count_once(redis: Backend) -> None:
    async def scenario() -> None:
        client = connect_url(redis.url)
        ledger = Ledger(client)
        records = [usage(i, model="gpt-5" if i % 3 else "gpt-4o") for i in range(200)]
        assert all([(await ledger.record(r)).recorded for r in records])
        assert not any([(await ledger.record(r)).recorded for r in records[:50]])  # replays
        expected = sum((r.cost_usd for r in records), Decimal(0))
        for window in ("hour", "day", "month"):
            totals = await ledger.totals(window, AT)
            assert totals.cost_usd == expected
            assert totals.calls == 200
            assert totals.input_tokens == sum(r.input_tokens for r in records)
            assert sum(totals.by_model.values()) == expected
            assert totals.by_model["gpt-4o"] == sum(
                (r.cost_usd for r in records if r.model == "gpt-4o"), Decimal(0)
            )
            assert totals.by_team == {"research": expected}
            assert totals.by_agent_type == {"code-generator": expected}
        await client.aclose()

    asyncio.run(scenario())


def test_windows_and_daily_series(redis: Backend) -> None:
    async def scenario() -> None:
        client = connect_url(redis.url)
        ledger = Ledger(client)
        yesterday = AT - dt.timedelta(days=1)
        await ledger.record(usage(1, at=yesterday))
        await ledger.record(usage(2))
        await ledger.record(usage(3, at=AT - dt.timedelta(hours=1)))
        hour = await ledger.totals("hour", AT)
        day = await ledger.totals("day", AT)
        month = await ledger.totals("month", AT)
        assert (hour.calls, day.calls, month.calls) == (1, 2, 3)
        series = await ledger.daily_series(yesterday.date() - dt.timedelta(days=1), AT.date())
        assert [d.isoformat() for d, _ in series] == ["2026-11-22", "2026-11-23", "2026-11-24"]
        assert series[0][1] == 0
        assert series[1][1] == usage(1, at=yesterday).cost_usd
        assert series[2][1] == usage(2).cost_usd + usage(3).cost_usd
        await client.aclose()

    asyncio.run(scenario())


def _recorder(url: str, worker: int, calls: int) -> None:
    async def main() -> None:
        client = connect_url(url, max_connections=400)
        ledger = Ledger(client)
        # Every process reports every call (as retries would), and many at once.
        await asyncio.gather(*(ledger.record(usage(i)) for i in range(calls)))
        await client.aclose()

    asyncio.run(main())


def test_concurrent_recorders_in_three_processes_lose_nothing(redis: Backend) -> None:
    calls = 300
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_recorder, args=(redis.url, w, calls)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0

    async def check() -> None:
        client = connect_url(redis.url)
        totals = await Ledger(client).totals("day", AT)
        assert totals.calls == calls
        assert totals.cost_usd == sum((usage(i).cost_usd for i in range(calls)), Decimal(0))
        await client.aclose()

    asyncio.run(check())


def test_money_is_never_rounded() -> None:
    assert to_nano(Decimal("0.00000125")) == 1250
    with pytest.raises(ValueError, match="nano-dollar resolution"):
        to_nano(Decimal("0.0000000001"))
    with pytest.raises(ValueError, match="timezone-aware"):
        UsageRecord("k", "gpt-5", "t", "team", 1, 1, Decimal(0), dt.datetime(2026, 1, 1))


def test_pipelined_batches_are_exact_and_idempotent(redis: Backend) -> None:
    async def scenario() -> None:
        client = connect_url(redis.url)
        ledger = Ledger(client)
        records = [usage(i) for i in range(150)]
        done = await ledger.record_many(records[:100])
        assert all(d.recorded for d in done)
        done = await ledger.record_many(records[50:])  # 50 replays, 50 new
        assert [d.recorded for d in done] == [False] * 50 + [True] * 50
        totals = await ledger.totals("day", AT)
        assert totals.calls == 150
        assert totals.cost_usd == sum((r.cost_usd for r in records), Decimal(0))
        await client.aclose()

    asyncio.run(scenario())


def test_cli_report_from_redis_prints_and_charts(redis: Backend, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ops.cli import app
    from tests.stacks import REPO

    today = dt.datetime.now(dt.UTC)

    async def fill() -> None:
        client = connect_url(redis.url)
        await Ledger(client).record(usage(1, at=today))
        await client.aclose()

    asyncio.run(fill())
    chart = tmp_path / "spend.png"
    result = CliRunner().invoke(
        app,
        [
            "cost",
            "report",
            "--redis-url",
            redis.url,
            "--stack",
            "local",
            "--stack-dir",
            str(REPO),
            "--days",
            "7",
            "--png",
            str(chart),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Spend analysis" in result.output and "gpt-5" in result.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
