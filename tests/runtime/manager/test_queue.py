"""The durable queue against a real redis-server: idempotency, bounds, priority, delivery,
reclaim from dead agents and dispatchers, dead letters, and Redis restarts."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from runtime.manager import keys as k
from runtime.manager.constants import Priority
from runtime.manager.queue import Assignment, QueueFull, TaskQueue, TaskStatus, TokenUsage
from runtime.manager.registry import AgentProfile, AgentRegistry
from runtime.service.redis import connect_url
from tests.redis_backends import Backend, backends

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


redis = backends(appendfsync="always")


async def register(client: Redis) -> None:
    """The agents these tests assign to: assignment refuses an agent nobody registered."""
    registry = AgentRegistry(client, heartbeat_ttl_s=30)
    for agent_id in ("agent-1", "agent-2", "agent-dead", "agent-live"):
        await registry.register(AgentProfile(agent_id, "coder", capacity=4))


def queue(server: Backend, **options: Any) -> tuple[Redis, TaskQueue]:
    client = connect_url(server.url)
    settings = {"max_queued_per_type": 100, "max_attempts": 3} | options
    return client, TaskQueue(client, **settings)


def test_idempotent_submit_creates_one_task_under_concurrency(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis)
        await register(client)
        results = await asyncio.gather(
            *(q.submit("coder", {"n": i}, idempotency_key="req-1") for i in range(50))
        )
        assert len({r.task_id for r in results}) == 1
        assert sum(r.created for r in results) == 1
        assert await q.queued("coder") == 1
        assert len(await q.take("coder", "m1", count=10)) == 1
        await client.aclose()

    run(scenario())


def test_bounded_queue_refuses_with_retry_after(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis, max_queued_per_type=2, retry_after_s=7)
        await q.submit("coder", {})
        await q.submit("coder", {})
        with pytest.raises(QueueFull) as info:
            await q.submit("coder", {})
        assert info.value.retry_after_s == 7
        assert info.value.queued == 2
        await q.submit("scanner", {})  # bounds are per agent type
        await client.aclose()

    run(scenario())


def test_higher_priority_is_taken_first(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis)
        await register(client)
        low = await q.submit("coder", "low", priority=Priority.LOW)
        normal = await q.submit("coder", "normal")
        high = await q.submit("coder", "high", priority=Priority.HIGH)
        taken = await q.take("coder", "m1", count=3)
        assert [t.task_id for t in taken] == [high.task_id, normal.task_id, low.task_id]
        await client.aclose()

    run(scenario())


def test_task_runs_once_through_an_agent(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis)
        await register(client)
        submitted = await q.submit("coder", {"prompt": "x"}, request_type="code")
        (taken,) = await q.take("coder", "m1")
        assert await q.assign(taken, "agent-1") is Assignment.ASSIGNED
        assert await q.assign(taken, "agent-2") is Assignment.ALREADY_ASSIGNED, (
            "a second dispatcher must not assign it"
        )
        (entry,) = await q.read_inbox("agent-1", count=10)
        assert await q.start(entry.task_id, "agent-1")
        assert await q.queued("coder") == 0
        assert await q.complete(entry, "agent-1", result={"ok": True})
        record = await q.get(submitted.task_id)
        assert record is not None
        assert record.status is TaskStatus.SUCCEEDED
        assert record.result == {"ok": True}
        assert record.attempts == 1
        assert record.agent_id == "agent-1"
        assert record.request_type == "code"
        assert not await q.complete(entry, "agent-1", result={}), "acknowledged once only"
        await client.aclose()

    run(scenario())


def test_dead_agents_task_is_reclaimed_and_finished_by_another(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis)
        await register(client)
        submitted = await q.submit("coder", {})
        (taken,) = await q.take("coder", "m1")
        await q.assign(taken, "agent-dead")
        (entry,) = await q.read_inbox("agent-dead", count=1)
        await q.start(entry.task_id, "agent-dead")
        # agent-dead never completes; its entry goes idle past the visibility timeout.
        outcomes = await q.reclaim_inbox("agent-dead", visibility_timeout_s=0, backoff_s=0)
        assert outcomes == {submitted.task_id: "retry"}
        assert (await q.get(submitted.task_id)).status is TaskStatus.RETRYING  # type: ignore[union-attr]
        assert await q.queued("coder") == 1
        assert await q.promote_due() == 1
        (again,) = await q.take("coder", "m2")
        await q.assign(again, "agent-live")
        (entry2,) = await q.read_inbox("agent-live", count=1)
        await q.start(entry2.task_id, "agent-live")
        await q.complete(entry2, "agent-live", result="done")
        record = await q.get(submitted.task_id)
        assert record is not None
        assert (record.status, record.attempts, record.agent_id) == (
            TaskStatus.SUCCEEDED,
            2,
            "agent-live",
        )
        await client.aclose()

    run(scenario())


def test_touched_work_is_not_reclaimed(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis)
        await register(client)
        await q.submit("coder", {})
        (taken,) = await q.take("coder", "m1")
        await q.assign(taken, "agent-1")
        (entry,) = await q.read_inbox("agent-1", count=1)
        # Idle for 100 s as far as Redis knows (XCLAIM's IDLE), without sleeping for it.
        inbox = k.inbox("agent-1")
        await client.xclaim(inbox, k.WORKER_GROUP, "agent-1", 0, [entry.entry_id], idle=100_000)
        await q.touch("agent-1", [entry.entry_id])
        assert await q.reclaim_inbox("agent-1", visibility_timeout_s=50, backoff_s=0) == {}
        await client.xclaim(inbox, k.WORKER_GROUP, "agent-1", 0, [entry.entry_id], idle=100_000)
        reclaimed = await q.reclaim_inbox("agent-1", visibility_timeout_s=50, backoff_s=0)
        assert list(reclaimed) == [entry.task_id], "untouched, the same entry is reclaimed"
        await client.aclose()

    run(scenario())


def test_out_of_attempts_goes_to_dead_letters(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis, max_attempts=2)
        await register(client)
        submitted = await q.submit("coder", {})
        outcomes = []
        for attempt in range(2):
            await q.promote_due()
            (taken,) = await q.take("coder", f"m{attempt}")
            await q.assign(taken, "agent-1")
            (entry,) = await q.read_inbox("agent-1", count=1)
            await q.start(entry.task_id, "agent-1")
            outcomes.append(await q.retry(entry, "handler crashed", backoff_s=0))
        assert outcomes == ["retry", "dead"]
        record = await q.get(submitted.task_id)
        assert record is not None
        assert record.status is TaskStatus.DEAD_LETTERED
        assert record.error == "handler crashed"
        assert await client.xlen(k.DEAD_LETTERS) == 1
        assert await q.queued("coder") == 0
        await client.aclose()

    run(scenario())


def test_crashed_dispatchers_tasks_are_taken_over(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis)
        await register(client)
        submitted = await q.submit("coder", {})
        await q.take("coder", "crashed-manager")  # taken, never assigned
        assert await q.take("coder", "m2") == []
        (taken,) = await q.reclaim_ready("coder", "m2", min_idle_s=0)
        assert taken.task_id == submitted.task_id
        assert await q.assign(taken, "agent-1") is Assignment.ASSIGNED
        await client.aclose()

    run(scenario())


@pytest.mark.standalone_only("restarts the one server")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_accepted_tasks_survive_a_redis_restart(redis: Backend, how: int) -> None:
    async def submit() -> list[str]:
        client, q = queue(redis)
        await register(client)
        ids = [(await q.submit("coder", {"i": i})).task_id for i in range(20)]
        (taken,) = await q.take("coder", "m1", count=1)
        await q.assign(taken, "agent-1")
        await client.aclose()
        return ids

    async def after() -> None:
        client, q = queue(redis)
        await register(client)
        for task_id in ids:
            assert await q.get(task_id) is not None
        assert await q.queued("coder") == 20
        assert len(await q.take("coder", "m2", count=50)) == 19
        assert len(await q.read_inbox("agent-1", count=5)) == 1
        await client.aclose()

    ids = run(submit())
    redis.restart(how)  # appendfsync always: even a crash keeps every accepted write
    run(after())


def test_assignment_needs_a_registered_agent_that_is_not_draining(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis)
        registry = AgentRegistry(client, heartbeat_ttl_s=30)
        await registry.register(AgentProfile("agent-1", "coder", capacity=4))
        await q.submit("coder", {})
        (taken,) = await q.take("coder", "m1")
        assert await q.assign(taken, "stranger") is Assignment.AGENT_UNAVAILABLE
        await registry.drain("agent-1")
        assert await q.assign(taken, "agent-1") is Assignment.AGENT_UNAVAILABLE
        await registry.register(AgentProfile("agent-1", "coder", capacity=4))  # back in service
        assert await q.assign(taken, "agent-1") is Assignment.ASSIGNED
        await client.aclose()

    run(scenario())


def test_load_quality_and_events_follow_each_transition(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis)
        registry = AgentRegistry(client, heartbeat_ttl_s=30)
        await registry.register(AgentProfile("agent-1", "coder", capacity=4))
        for i in range(3):
            await q.submit("coder", {"i": i})
        taken = await q.take("coder", "m1", count=3)
        assert await q.assign_many([(t, "agent-1") for t in taken]) == [Assignment.ASSIGNED] * 3
        assert (await registry.get("agent-1")).load == 3  # type: ignore[union-attr]
        ok, bad, lost = await q.read_inbox("agent-1", count=3)
        for entry in (ok, bad, lost):
            await q.start(entry.task_id, "agent-1")
        usage = (TokenUsage("gpt-4o", 120, 30),)
        await q.complete(ok, "agent-1", result="fine", usage=usage)
        await q.complete(bad, "agent-1", error="boom")
        assert await q.retry(lost, "gave up", backoff_s=0) == "retry"
        record = await registry.get("agent-1")
        assert record is not None
        assert record.load == 0
        # A success keeps 1.0, the failure weighs 0.2: 0.8 · 1.0 + 0.2 · 0 (the retry is no
        # completion and does not count).
        assert record.success_rate == pytest.approx(0.8)
        assert (await q.get(ok.task_id)).usage == usage  # type: ignore[union-attr]
        events = [
            {k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in await client.xrange(k.EVENTS)
        ]
        kinds = [(e["kind"], e.get("status")) for e in events]
        assert kinds.count(("started", None)) == 3
        assert ("finished", "succeeded") in kinds and ("finished", "failed") in kinds
        assert ("retry", None) in kinds
        finished = next(e for e in events if e.get("status") == "succeeded")
        assert finished["agent"] == "agent-1"
        assert '"model":"gpt-4o"' in finished["usage"]
        await client.aclose()

    run(scenario())


def test_retry_backoff_doubles_per_attempt_up_to_the_cap(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis, max_attempts=10)
        await register(client)
        submitted = await q.submit("coder", {})
        delays = []
        for _ in range(4):
            await q.promote_due(now=time.time() + 3600)  # no need to wait the backoff out
            (taken,) = await q.take("coder", "m1")
            await q.assign(taken, "agent-1")
            (entry,) = await q.read_inbox("agent-1", count=1)
            await q.start(entry.task_id, "agent-1")
            before = time.time()
            await q.retry(entry, "again", backoff_s=1, backoff_max_s=5)
            due = await client.zscore(k.DELAYED, submitted.task_id)
            delays.append(round(due - before))
        assert delays == [1, 2, 4, 5]
        await client.aclose()

    run(scenario())


def test_a_gone_agents_inbox_is_evacuated_delivered_or_not(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis)
        await register(client)
        ids = [(await q.submit("coder", {"i": i})).task_id for i in range(3)]
        for taken in await q.take("coder", "m1", count=3):
            await q.assign(taken, "agent-dead")
        (read,) = await q.read_inbox("agent-dead", count=1)  # one delivered, two not
        await q.start(read.task_id, "agent-dead")
        outcomes = await q.evacuate("agent-dead", "agent gone", backoff_s=0)
        assert outcomes == dict.fromkeys(ids, "retry")
        assert await q.promote_due() == 3
        assert len(await q.take("coder", "m2", count=10)) == 3
        await client.aclose()

    run(scenario())


def test_a_deferred_task_waits_as_told_and_keeps_its_attempt(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(redis, max_attempts=1)
        await register(client)
        submitted = await q.submit("coder", {})
        (taken,) = await q.take("coder", "m1")
        await q.assign(taken, "agent-1")
        (entry,) = await q.read_inbox("agent-1", count=1)
        await q.start(entry.task_id, "agent-1")
        before = time.time()
        # One attempt allowed, yet a deferral does not dead-letter: it is no failure.
        assert await q.retry(entry, "rate limit", backoff_s=0, defer_s=120) == "retry"
        due = await client.zscore(k.DELAYED, submitted.task_id)
        assert round(due - before) == 120
        record = await q.get(submitted.task_id)
        assert record is not None
        assert (record.status, record.attempts) == (TaskStatus.RETRYING, 0)
        assert await q.queued("coder") == 1
        await client.aclose()

    run(scenario())


def test_dead_letters_are_capped_and_dead_records_expire(redis: Backend) -> None:
    async def scenario() -> None:
        client, q = queue(
            redis, max_queued_per_type=1000, max_attempts=1, dead_letter_cap=100, retention_s=3600
        )
        await register(client)
        for i in range(150):
            await q.submit("coder", {"i": i})
        while taken := await q.take("coder", "m1", count=50):
            for t in taken:
                await q.assign(t, "agent-1")
        for entry in await q.read_inbox("agent-1", count=200):
            await q.start(entry.task_id, "agent-1")
            assert await q.retry(entry, "handler crashed", backoff_s=0) == "dead"
        assert await q.dead_letters() == 100, "the oldest beyond the cap are trimmed"
        (newest,) = await client.xrevrange(k.DEAD_LETTERS, count=1)
        record = await q.get(newest[1][b"task"].decode())
        assert record is not None and record.status.value == "dead_lettered"
        assert 3500 < await client.ttl(k.task_key(record.task_id)) <= 3600
        await client.aclose()

    run(scenario())
