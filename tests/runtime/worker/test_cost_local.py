"""The worker's in-process cost gate (AGENTOPS_COST_CONFIG): the cost package's scripts on the
queue's Redis instead of the cost engine's API, with the same guarantees — each task charged
once across a crash, reservations settled, an exhausted budget fails the task."""

from __future__ import annotations

import json
import re
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from contracts.settings.worker import WorkerSettings
from runtime.cost import keys as cost_keys
from runtime.cost.metrics import CostMetrics
from runtime.manager.queue import TaskRecord, TaskStatus, TokenUsage
from runtime.service.redis import reply
from runtime.worker.cost_local import LocalCost
from runtime.worker.runner import Worker
from tests.runtime.worker.test_runner import (
    COST,
    MODEL,
    CountingHandler,
    Crash,
    Platform,
    ledger_calls,
    redis,
    run,
    settings,
)
from tests.servers import RedisServer

__all__ = ["redis"]  # the fixture (one redis-server per test), shared with test_runner


async def local_worker(p: Platform, agent_id: str, handler: CountingHandler, cost: Any) -> Worker:
    worker = await p.worker(agent_id, handler)
    s = settings(p.tmp_path, agent_id, None, cost_config=json.dumps(cost))
    worker.cost = LocalCost(s, p.redis, CostMetrics(CollectorRegistry()))
    return worker


def test_the_settings_take_one_cost_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most one of AGENTOPS_COST_ENGINE_URL"):
        settings(tmp_path, "a-1", "http://127.0.0.1:9", cost_config=json.dumps(COST))
    assert isinstance(settings(tmp_path, "a-1", None, cost_config=json.dumps(COST)), WorkerSettings)


def test_in_process_a_worker_dying_after_the_usage_record_is_neither_rerun_nor_charged_twice(
    redis: RedisServer, tmp_path: Path
) -> None:
    handler = CountingHandler()

    async def body(p: Platform) -> tuple[list[TaskRecord], int, Decimal]:
        doomed = await local_worker(p, "doomed-1", handler, COST)
        assert doomed.cost is not None
        record = doomed.cost.record

        async def record_then_die(*args: Any) -> None:
            await record(*args)
            raise Crash  # killed between the usage record and the acknowledgement

        doomed.cost.record = record_then_die  # type: ignore[method-assign]
        ids = [(await p.queue.submit("coder", {"i": i})).task_id for i in range(3)]
        with pytest.raises(Crash):
            await p.deliver(doomed)
        await p.queue.reclaim_inbox("doomed-1", visibility_timeout_s=0, backoff_s=0)
        other = await local_worker(p, "other-1", handler, COST)
        records = await p.until_finished(ids, other)
        reserved = int(await reply(p.redis.hget(cost_keys.RESERVED, "platform")) or 0)
        assert isinstance(other.cost, LocalCost)
        spent = (await other.cost.engine.ledger.totals("day", other.cost.engine.clock())).cost_usd
        return records, reserved, spent

    records, reserved, spent = run(redis, tmp_path, None, body)
    first = records[0].task_id
    assert handler.runs[first] == 1, "the finished attempt is completed, not run again"
    assert [r.status for r in records] == [TaskStatus.SUCCEEDED] * 3
    assert records[0].usage == (TokenUsage(MODEL, 100, 20),)
    assert ledger_calls(redis) == 3, "one charge per task"
    assert reserved == 0, "every reservation settled by its usage record"
    # gpt-4o: 2.50 / 10.00 USD per million input / output tokens.
    assert spent == 3 * (Decimal(100) * Decimal("2.5") + Decimal(20) * 10) / 1_000_000


def test_in_process_an_exhausted_budget_fails_the_task_without_running_it(
    redis: RedisServer, tmp_path: Path
) -> None:
    handler = CountingHandler()
    tiny = {"budget": {"dailyUsd": "0.000001", "monthlyUsd": "10000"}}

    async def body(p: Platform) -> list[TaskRecord]:
        worker = await local_worker(p, "poor-1", handler, tiny)
        ids = [(await p.queue.submit("coder", {"i": 0})).task_id]
        return await p.until_finished(ids, worker)

    [record] = run(redis, tmp_path, None, body)
    assert record.status is TaskStatus.FAILED
    assert record.error is not None and record.error.startswith("budget exhausted: ")
    assert handler.runs == {}
    assert ledger_calls(redis) == 0


def _monitored(redis: RedisServer, out: Path) -> subprocess.Popen[bytes]:
    """The real server's MONITOR: every command it runs, with the connection it came on."""
    log = out.open("wb")
    spy = subprocess.Popen(
        ["redis-cli", "-p", str(redis.port), "monitor"], stdout=log, stderr=subprocess.DEVNULL
    )
    for _ in range(200):
        if out.read_bytes().startswith(b"OK"):
            return spy
        time.sleep(0.01)
    raise AssertionError("MONITOR did not start")


def test_in_process_the_outcome_is_stored_before_the_charge_on_one_connection(
    redis: RedisServer, tmp_path: Path
) -> None:
    """On one standalone Redis the outcome's FINISH and the usage record go together; the
    server runs FINISH first, from the same connection, for every task."""
    handler = CountingHandler()
    spy = _monitored(redis, tmp_path / "monitor.log")

    async def body(p: Platform) -> list[TaskRecord]:
        worker = await local_worker(p, "w-1", handler, COST)
        ids = [(await p.queue.submit("coder", {"i": i})).task_id for i in range(4)]
        return await p.until_finished(ids, worker)

    try:
        records = run(redis, tmp_path, None, body)
        time.sleep(0.2)
    finally:
        spy.terminate()
        spy.wait()
    assert [r.status for r in records] == [TaskStatus.SUCCEEDED] * 4
    seen: dict[str, list[tuple[str, str]]] = {}  # task → (step, connection) in server order
    finish = re.compile(r'\[\d+ ([\d.:]+)\] "EVAL" "local task, agent, attempt = KEYS\[1\].*?'
                        r'"1" "agentops:\{manager\}:task:([^"]+)"')  # fmt: skip
    record = re.compile(r'\[\d+ ([\d.:]+)\] "EVALSHA" "[0-9a-f]{40}" "\d+" '
                        r'"agentops:\{cost\}:seen:([^":]+):1"')  # fmt: skip
    for line in (tmp_path / "monitor.log").read_text().splitlines():
        for step, pattern in (("finish", finish), ("record", record)):
            if found := pattern.search(line):
                seen.setdefault(found.group(2), []).append((step, found.group(1)))
    assert sorted(seen) == sorted(r.task_id for r in records)
    for task_id, steps in seen.items():
        # (The first record of the run may show twice: NOSCRIPT, then loaded and sent again.)
        assert [s for s, _ in steps][:2] == ["finish", "record"], (task_id, steps)
        assert {s for s, _ in steps[2:]} <= {"record"}, (task_id, steps)
        assert len({c for _, c in steps}) == 1, f"{task_id}: one connection, {steps}"
    assert ledger_calls(redis) == 4
