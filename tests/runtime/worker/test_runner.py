"""The worker's attempt path against a real redis-server and a real cost-engine process:
retries that retry, outages that spend no attempt, and a finished task that is never run (or
charged) again. The workers run in this process so a crash can be placed exactly where it
hurts: right after the usage record, before the acknowledgement."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from contracts.settings.worker import WorkerSettings
from runtime.cost import keys as cost_keys
from runtime.manager import constants as k
from runtime.manager.queue import TaskQueue, TaskRecord, TaskStatus, TokenUsage
from runtime.manager.registry import AgentProfile, AgentRegistry
from runtime.worker.cost_client import CostClient
from runtime.worker.handlers.base import HandlerResult, TaskContext
from runtime.worker.manager_client import ManagerClient
from runtime.worker.metrics import WorkerMetrics
from runtime.worker.runner import Worker
from tests.runtime.cost.test_service import TOKEN, Engine, start, stop
from tests.servers import RedisServer, free_port, redis_server

T = TypeVar("T")
MODEL = "gpt-4o"
COST = {"budget": {"dailyUsd": "1000", "monthlyUsd": "10000"}}


class Crash(BaseException):
    """The process dies here: nothing after this point of the attempt runs."""


class CountingHandler:
    """Counts how often each task's work really ran; optionally slow."""

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.sleep_s = sleep_s
        self.runs: dict[str, int] = {}

    async def __call__(self, task: TaskContext) -> HandlerResult:
        self.runs[task.task_id] = self.runs.get(task.task_id, 0) + 1
        await asyncio.sleep(self.sleep_s)
        return HandlerResult({"done": task.task_id}, (TokenUsage(MODEL, 100, 20),))


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis", appendfsync="always") as server:
        yield server


def settings(tmp_path: Path, agent_id: str, cost_url: str | None, **extra: Any) -> WorkerSettings:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    return WorkerSettings(
        agent_type="coder",
        agent_id=agent_id,
        manager_url="http://127.0.0.1:9",  # not called on the attempt path
        agent_token_file=token,
        cost_engine_url=cost_url,
        cost_token_file=token if cost_url else None,
        model=MODEL,
        retry_backoff_s=0,
        retry_backoff_max_s=0,
        usage_record_attempts=2,
        **extra,
    )


class Platform:
    """A manager's queue and registry plus in-process workers on one Redis."""

    def __init__(self, redis_url: str, tmp_path: Path, cost_url: str | None) -> None:
        self.redis = Redis.from_url(redis_url)
        self.queue = TaskQueue(self.redis, max_queued_per_type=10_000, max_attempts=3)
        self.registry = AgentRegistry(self.redis, heartbeat_ttl_s=60)
        self.tmp_path = tmp_path
        self.cost_url = cost_url
        self.workers: list[Worker] = []

    async def worker(self, agent_id: str, handler: CountingHandler, **extra: Any) -> Worker:
        s = settings(self.tmp_path, agent_id, self.cost_url, **extra)
        await self.registry.register(AgentProfile(agent_id, "coder", capacity=8))
        cost = CostClient(s) if self.cost_url else None
        worker = Worker(s, self.redis, ManagerClient(s), handler, WorkerMetrics(), cost)
        self.workers.append(worker)
        return worker

    async def deliver(self, worker: Worker) -> None:
        """Dispatch what is ready (due retries first) to this worker and run its inbox."""
        await self.queue.promote_due(now=float("inf"))
        for taken in await self.queue.take("coder", "dispatcher-0", count=100):
            await self.queue.assign(taken, worker.settings.agent_id)
        for entry in await self.queue.read_inbox(worker.settings.agent_id, count=100):
            await worker._run(entry)

    async def until_finished(self, task_ids: list[str], worker: Worker) -> list[TaskRecord]:
        terminal = {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.DEAD_LETTERED}
        for _ in range(20):
            records = [await self.queue.get(t) for t in task_ids]
            if all(r is not None and r.status in terminal for r in records):
                return [r for r in records if r is not None]
            await self.deliver(worker)
        raise AssertionError(f"not finished: {[await self.queue.get(t) for t in task_ids]}")

    async def close(self) -> None:
        for worker in self.workers:
            await worker.manager.aclose()
            if worker.cost is not None:
                await worker.cost.aclose()
        await self.redis.aclose()


def run(
    redis: RedisServer,
    tmp_path: Path,
    cost_url: str | None,
    body: Callable[[Platform], Awaitable[T]],
) -> T:
    async def go() -> T:
        platform = Platform(redis.url, tmp_path, cost_url)
        try:
            return await body(platform)
        finally:
            await platform.close()

    return asyncio.run(go())


def ledger_calls(redis: RedisServer) -> int:
    """Usage records in the cost engine's ledger (one idempotency mark per recorded call)."""

    async def count() -> int:
        client = Redis.from_url(redis.url)
        try:
            return len([key async for key in client.scan_iter(cost_keys.seen("*"))])
        finally:
            await client.aclose()

    return asyncio.run(count())


@pytest.fixture
def engine(redis: RedisServer, tmp_path: Path) -> Iterator[Engine]:
    started = start(redis, tmp_path, COST)
    try:
        yield started
    finally:
        stop(started)


def test_a_handler_slower_than_the_timeout_is_retried_up_to_the_tasks_attempts(
    redis: RedisServer, tmp_path: Path
) -> None:
    async def body(p: Platform) -> list[TaskRecord]:
        worker = await p.worker("slow-1", CountingHandler(sleep_s=5), task_timeout_s=0.05)
        ids = [(await p.queue.submit("coder", {"i": i})).task_id for i in range(3)]
        return await p.until_finished(ids, worker)

    records = run(redis, tmp_path, None, body)
    # Before: the worker's own queue said max_attempts=1, so the first timeout dead-lettered.
    assert {r.status for r in records} == {TaskStatus.DEAD_LETTERED}
    assert {r.attempts for r in records} == {3}


def test_a_cost_engine_outage_defers_without_spending_an_attempt(
    redis: RedisServer, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet: the cost engine is down
    handler = CountingHandler()

    async def body(p: Platform) -> list[TaskRecord]:
        worker = await p.worker("w-1", handler)
        ids = [(await p.queue.submit("coder", {"i": i})).task_id for i in range(5)]
        for _ in range(4):  # four rounds of the outage: each one defers, none fails
            await p.deliver(worker)
        during = [await p.queue.get(t) for t in ids]
        assert {r.status for r in during if r} == {TaskStatus.RETRYING}
        assert {r.attempts for r in during if r} == {0}
        return ids  # type: ignore[return-value]

    ids = run(redis, tmp_path, f"http://127.0.0.1:{port}", body)
    assert not handler.runs, "no work ran without a reservation"
    engine = start(redis, tmp_path, COST, port)
    try:

        async def after(p: Platform) -> list[TaskRecord]:
            worker = await p.worker("w-1", handler)
            return await p.until_finished(list(ids), worker)  # type: ignore[arg-type]

        records = run(redis, tmp_path, engine.url, after)
    finally:
        stop(engine)
    assert {r.status for r in records} == {TaskStatus.SUCCEEDED}
    assert {r.attempts for r in records} == {1}
    assert ledger_calls(redis) == 5


def test_a_worker_dying_after_the_usage_record_is_neither_rerun_nor_charged_twice(
    redis: RedisServer, tmp_path: Path, engine: Engine
) -> None:
    handler = CountingHandler()

    async def body(p: Platform) -> list[TaskRecord]:
        doomed = await p.worker("doomed-1", handler)
        assert doomed.cost is not None
        record = doomed.cost.record

        async def record_then_die(*args: Any) -> None:
            await record(*args)
            raise Crash  # killed between the usage record and the acknowledgement

        doomed.cost.record = record_then_die  # type: ignore[method-assign]
        ids = [(await p.queue.submit("coder", {"i": i})).task_id for i in range(3)]
        with pytest.raises(Crash):
            await p.deliver(doomed)
        # The manager reclaims what the dead agent held; another agent picks it up.
        await p.queue.reclaim_inbox("doomed-1", visibility_timeout_s=0, backoff_s=0)
        other = await p.worker("other-1", handler)
        return await p.until_finished(ids, other)

    records = run(redis, tmp_path, engine.url, body)
    first = records[0].task_id
    assert handler.runs[first] == 1, "the finished attempt is completed, not run again"
    assert records[0].status is TaskStatus.SUCCEEDED
    assert records[0].attempts == 1
    assert records[0].usage == (TokenUsage(MODEL, 100, 20),)
    assert ledger_calls(redis) == 3, "one charge per task"


def test_an_acknowledgement_lost_on_a_reset_connection_is_retried(
    redis: RedisServer, tmp_path: Path
) -> None:
    async def body(p: Platform) -> list[TaskRecord]:
        worker = await p.worker("w-1", CountingHandler())
        complete = p.queue.complete
        failures = iter([RedisConnectionError("Connection reset by peer")])

        async def flaky(*args: Any, **kwargs: Any) -> bool:
            error = next(failures, None)
            if error is not None:
                raise error
            return await complete(*args, **kwargs)

        worker.queue.complete = flaky  # type: ignore[method-assign]
        ids = [(await p.queue.submit("coder", {"i": 1})).task_id]
        await p.deliver(worker)
        return [r for r in [await p.queue.get(i) for i in ids] if r]

    records = run(redis, tmp_path, None, body)
    assert records[0].status is TaskStatus.SUCCEEDED, "finished in the same delivery"
    assert records[0].attempts == 1


def test_finished_tasks_expire_after_the_retention(redis: RedisServer, tmp_path: Path) -> None:
    async def body(p: Platform) -> tuple[int, int]:
        p.queue = TaskQueue(p.redis, max_attempts=1, retention_s=3600)
        worker = await p.worker("w-1", CountingHandler())
        ids = [(await p.queue.submit("coder", {"i": 1})).task_id]
        await p.until_finished(ids, worker)
        return int(await p.redis.ttl(k.task_key(ids[0]))), int(
            await p.redis.ttl(k.task_key((await p.queue.submit("coder", {})).task_id))
        )

    finished_ttl, queued_ttl = run(redis, tmp_path, None, body)
    assert 3500 < finished_ttl <= 3600
    assert queued_ttl == -1, "a task still to run never expires"
