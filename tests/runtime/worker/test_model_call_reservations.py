"""A task whose LLM loop calls the model several times through tools: every model call is
reserved before it is made and recorded under its own key, against a real cost-engine process,
a real redis-server, a real MCP server (the SDK's) and the stand-in provider.

The worker runs in this process (tests/runtime/worker/test_runner.py's harness). gpt-4o costs
2.5 USD per million input and 10 per million output tokens, and a call's hold is its largest
cost: 4,000 input + 1,000 output tokens = 0.02 USD.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from contracts.settings.llm import LLMSettings
from runtime.cost import keys as cost_keys
from runtime.manager.queue import TaskRecord, TaskStatus, TokenUsage
from runtime.worker.handlers.llm import LLMHandler
from tests.runtime.cost.test_service import start, stop
from tests.runtime.worker.mcp_server import tool_server
from tests.runtime.worker.standin import Answer, provider
from tests.runtime.worker.test_runner import MODEL, Platform, run
from tests.servers import RedisServer, redis_server

KEY = "sk-multi-call-0123456789abcdef"
# A tool call whose model call reports 3,000 + 500 tokens: 0.0075 + 0.005 = 0.0125 USD.
BIG = Answer(tool_call=("calc__add", {"a": 2, "b": 3}), tokens=(3000, 500))
SMALL = Answer(tool_call=("calc__add", {"a": 4, "b": 5}), tokens=(100, 10))
NANO = 10**9


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis", appendfsync="always") as server:
        yield server


def _run_task(
    redis: RedisServer, tmp_path: Path, daily_usd: str, script: list[Answer]
) -> tuple[TaskRecord, list[Any], list[Any]]:
    """One task on an llm worker with the calc server; the record, the provider's and the
    tool server's requests."""
    key_file = tmp_path / "llm-key"
    key_file.write_text(KEY)
    engine = start(redis, tmp_path, {"budget": {"dailyUsd": daily_usd, "monthlyUsd": "10000"}})
    try:
        with tool_server("calc") as server, provider(KEY, script) as llm:
            settings = LLMSettings(
                base_url=llm.url, api_key_file=key_file, tool_servers={"calc": server.url}
            )

            async def body(p: Platform) -> TaskRecord:
                handler = LLMHandler(settings)
                try:
                    worker = await p.worker("llm-1", handler)  # type: ignore[arg-type]
                    task_id = (await p.queue.submit("coder", {"prompt": "add"})).task_id
                    (record,) = await p.until_finished([task_id], worker)
                    return record
                finally:
                    await handler.aclose()

            record = run(redis, tmp_path, engine.url, body)
            return record, list(llm.received), list(server.received)
    finally:
        stop(engine)


def _ledger(redis: RedisServer) -> dict[str, Any]:
    """What the cost engine's Redis holds: recorded call keys, open reservations, held and
    spent amounts (nano-USD) of the platform today."""

    async def read() -> dict[str, Any]:
        client = Redis.from_url(redis.url, decode_responses=True)
        try:
            seen = sorted(
                [
                    key.removeprefix(cost_keys.seen(""))
                    async for key in client.scan_iter(cost_keys.seen("*"))
                ]
            )
            day = cost_keys.usage("day", cost_keys.buckets(dt.datetime.now(dt.UTC))["day"])
            return {
                "recorded": seen,
                "open": await client.hgetall(cost_keys.RESERVATIONS),
                "held": int(await client.hget(cost_keys.RESERVED, cost_keys.PLATFORM) or 0),
                "spent": int(
                    await client.hget(day, cost_keys.ledger_field(cost_keys.PLATFORM)) or 0
                ),
            }
        finally:
            await client.aclose()

    return asyncio.run(read())


def _cost_nano(usage: TokenUsage) -> int:
    # gpt-4o: 2.5 and 10 USD per million tokens = 2,500 and 10,000 nano-USD per token.
    return usage.input_tokens * 2_500 + usage.output_tokens * 10_000


def test_each_model_call_of_a_tool_loop_is_reserved_and_recorded_on_its_own(
    redis: RedisServer, tmp_path: Path
) -> None:
    record, asked, tools = _run_task(redis, tmp_path, "1000", [BIG, SMALL])
    assert record.status is TaskStatus.SUCCEEDED, record.error
    assert len(asked) == 3 and tools == [("add", {"a": 2, "b": 3}), ("add", {"a": 4, "b": 5})]
    assert len(record.usage) == 3
    assert record.usage[:2] == (TokenUsage(MODEL, 3000, 500), TokenUsage(MODEL, 100, 10))
    ledger = _ledger(redis)
    t = record.task_id
    assert ledger["recorded"] == [f"{t}:1", f"{t}:1:2", f"{t}:1:3"], "one record per call"
    assert ledger["open"] == {} and ledger["held"] == 0, "every hold settled"
    assert ledger["spent"] == sum(_cost_nano(u) for u in record.usage)


def test_a_budget_that_holds_the_calls_cost_as_it_goes_lets_the_loop_finish(
    redis: RedisServer, tmp_path: Path
) -> None:
    # 0.035 USD a day: the second call's hold (0.02) fits beside the first call's cost
    # (0.0125) — it would not beside the first call's hold (0.02 + 0.02 = 0.04): each call's
    # hold is settled to its cost before the next one is reserved.
    record, asked, _ = _run_task(redis, tmp_path, "0.035", [BIG])
    assert record.status is TaskStatus.SUCCEEDED, record.error
    assert len(asked) == 2
    ledger = _ledger(redis)
    assert ledger["recorded"] == [f"{record.task_id}:1", f"{record.task_id}:1:2"]
    assert ledger["open"] == {} and ledger["held"] == 0


def test_a_call_the_budget_cannot_hold_is_not_made_and_what_was_spent_is_charged(
    redis: RedisServer, tmp_path: Path
) -> None:
    # 0.03 USD a day: the first call (hold 0.02) fits; after it cost 0.0125, the second call's
    # hold does not (0.0325). The task fails on the budget before its tools run; before this
    # change the loop made every call under the first call's reservation.
    record, asked, tools = _run_task(redis, tmp_path, "0.03", [BIG])
    assert record.status is TaskStatus.FAILED
    assert record.error is not None and "budget exhausted" in record.error
    assert len(asked) == 1, "the call the budget could not hold was never sent"
    assert tools == [], "nor were the tools run whose results it would have answered"
    assert record.usage == (TokenUsage(MODEL, 3000, 500),)
    ledger = _ledger(redis)
    assert ledger["recorded"] == [f"{record.task_id}:1"]
    assert ledger["spent"] == 12_500_000 == _cost_nano(record.usage[0])
    assert ledger["open"] == {} and ledger["held"] == 0
