"""Hourly MCP tool-call limits in a real Redis: atomic across concurrent callers, per team and
for the platform, with the wait until a call fits."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from runtime.cost import keys
from runtime.cost.limits import RateLimited
from runtime.cost.tool_limits import ToolCallLimiter, ToolLimit
from tests.runtime.cost.test_controls import MS, run
from tests.servers import RedisServer

TEAM, OTHER = keys.team_scope("research"), keys.team_scope("ops")


def test_concurrent_tool_calls_admit_exactly_the_limits(redis: RedisServer) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis.url)
        limiter = ToolCallLimiter(client)
        platform = ToolLimit(keys.PLATFORM, 15)

        async def one(scope: str, limit: int, i: int) -> bool:
            try:
                await limiter.admit([platform, ToolLimit(scope, limit)], f"{scope}-{i}", MS + i)
            except RateLimited:
                return False
            return True

        research = [one(TEAM, 10, i) for i in range(40)]
        ops = [one(OTHER, 100, i) for i in range(40)]
        outcomes = await asyncio.gather(*research, *ops)
        assert sum(outcomes[:40]) <= 10, "the team's limit holds"
        assert sum(outcomes) == 15, "the platform's limit holds across teams"
        # A refused call is counted nowhere: the logs hold exactly the admitted calls.
        assert await client.zcard(keys.tool_calls(keys.PLATFORM)) == 15
        assert await client.zcard(keys.tool_calls(TEAM)) == sum(outcomes[:40])
        await client.aclose()

    run(scenario())


def test_a_refusal_names_the_scope_and_when_a_call_fits(redis: RedisServer) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis.url)
        limiter = ToolCallLimiter(client)
        limits = [ToolLimit(keys.PLATFORM, None), ToolLimit(TEAM, 2)]
        await limiter.admit(limits, "a", MS)
        await limiter.admit(limits, "b", MS + 60_000)
        with pytest.raises(RateLimited) as info:
            await limiter.admit(limits, "c", MS + 600_000)
        # "a" leaves the hour at T0 + 3600 s, 3000 s from now.
        assert (info.value.scope, info.value.dimension, info.value.limit) == (TEAM, "tool_calls", 2)
        assert info.value.retry_after_s == 3000
        with pytest.raises(RateLimited):
            await limiter.admit(limits, "c", MS + 3_599_999)
        await limiter.admit(limits, "c", MS + 3_600_000)
        # Without any limit set, nothing is written.
        await limiter.admit([ToolLimit(OTHER, None)], "d", MS)
        assert not await client.exists(keys.tool_calls(OTHER))
        await client.aclose()

    run(scenario())
