"""Failover without loss on a real Redis Cluster (3 primaries + 3 replicas, cluster-node-timeout
1 s): under load (task submits, usage records, limit admissions, every accepting write
confirmed by 1 replica with WAIT), the primary holding the manager's or the cost engine's slot
is SIGKILLed. Its replica is promoted and the client follows; the killed node comes back as
the promoted one's replica (as ElastiCache replaces a failed node). Every accepted task
completes, no usage is counted twice, no limit is exceeded by more than one call.

Why the first version hung: after the failover the promoted replica has no replica of its own
until the lost node returns, so `WAIT 1` can never be met there; every write of that shard is
(rightly) refused as NotReplicated, and the old test retried each one 600 times × 2 s. Now the
lost node is restarted and every wait has a deadline that names what was not reached.

The counts are printed (-s)."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from runtime.cost import keys as cost_keys
from runtime.cost.ledger import Ledger, UsageRecord
from runtime.cost.limits import Limit, RateLimited, RateLimiter
from runtime.manager import keys as k
from runtime.manager.queue import TaskQueue
from runtime.manager.registry import AgentProfile, AgentRegistry
from runtime.service.keys import slot
from runtime.service.redis import (
    TRANSIENT_REDIS_ERRORS,
    NotReplicated,
    Replication,
    connect_url,
    replicated,
)
from tests.servers import RedisClusterServers, RedisServer, redis_cluster

T = TypeVar("T")

TASKS = 200
USAGE = 200
CALLERS = 200
LIMIT = 80  # requests per hour of one scope; CALLERS try
LANES = 16  # calls in flight at once, as a service's request concurrency
CONFIRMED = Replication(replicas=1, timeout_ms=1000)
CALL_DEADLINE_S = 60.0
NOW = dt.datetime.now(dt.UTC)


REFUSED: Counter[str] = Counter()  # transient refusals met (the load crossed the failover)


async def _until_accepted(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Retry a call through the failover, as an HTTP client retries a 503 (same key)."""
    deadline = time.monotonic() + CALL_DEADLINE_S
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            return await asyncio.wait_for(call(), CALL_DEADLINE_S)
        except TRANSIENT_REDIS_ERRORS as err:
            last = err
            REFUSED[type(err).__name__] += 1
            await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not accepted in {CALL_DEADLINE_S:.0f} s (last: {last!r})")


def _owner(cluster: RedisClusterServers, wanted: int) -> RedisServer | None:
    """The live primary serving a slot, by CLUSTER NODES (`… master … connected 0-5460 …`)."""
    for first in cluster.primaries():
        for line in cluster.cli(first, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= wanted <= int(high or low):
                    port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                    return next(n for n in cluster.nodes if n.port == port)
        return None
    return None


async def _kill_and_replace(cluster: RedisClusterServers, victim: RedisServer, wanted: int) -> int:
    """SIGKILL the slot's primary, wait for another node to serve the slot, start the lost node
    again (it rejoins as a replica). Returns the promoted primary's port."""
    await asyncio.sleep(1.0)
    victim.stop(signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        owner = await asyncio.to_thread(_owner, cluster, wanted)
        if owner is not None and owner.port != victim.port:
            await asyncio.to_thread(victim.start)
            return owner.port
        await asyncio.sleep(0.2)
    raise AssertionError(f"no replica promoted for slot {wanted} within 30 s")


async def _load(client: Redis, kill: Awaitable[int]) -> dict[str, Any]:
    queue = TaskQueue(client, max_queued_per_type=10_000, replication=CONFIRMED)
    ledger = Ledger(client, CONFIRMED)
    limiter = RateLimiter(client)
    limit = Limit("platform", requests=LIMIT)
    lanes = asyncio.Semaphore(LANES)
    admitted = 0

    async def submit(i: int) -> str:
        key = f"task-{i}"
        result = await _until_accepted(
            key, lambda: queue.submit("coder", {"i": i}, idempotency_key=key)
        )
        return str(result.task_id)

    async def record(i: int) -> None:
        usage = UsageRecord(
            f"call-{i}:1", "gpt-5", "coder", "research", 100, 10, Decimal("0.001"), NOW
        )
        await _until_accepted(f"usage call-{i}", lambda: ledger.record(usage))

    async def admit(i: int) -> None:
        nonlocal admitted
        try:
            await _until_accepted(
                f"admission limit-{i}",
                lambda: limiter.admit(f"limit-{i}", 0, 0, [limit], int(time.time() * 1000)),
            )
            admitted += 1
        except RateLimited:
            pass

    async def laned(make: Callable[[int], Awaitable[T]], i: int) -> T:
        async with lanes:
            return await make(i)

    async def paced(make: Callable[[int], Awaitable[T]], n: int) -> list[T]:
        jobs = []
        for i in range(n):
            jobs.append(asyncio.create_task(laned(make, i)))
            await asyncio.sleep(0.01)
        return list(await asyncio.gather(*jobs))

    # The killer in the same gather: if no replica is promoted, that failure comes first.
    ids, _, _, promoted = await asyncio.gather(
        paced(submit, TASKS), paced(record, USAGE), paced(admit, CALLERS), kill
    )
    return {"ids": ids, "admitted": admitted, "promoted": promoted}


async def _drain(client: Redis, ids: list[str]) -> int:
    """Run every accepted task to completion through the queue's real path."""
    queue = TaskQueue(client)
    registry = AgentRegistry(client, heartbeat_ttl_s=60)
    await registry.register(AgentProfile("agent-1", "coder", capacity=10_000))
    while taken := await queue.take("coder", "m1", count=100):
        await queue.assign_many([(t, "agent-1") for t in taken])
    for entry in await queue.read_inbox("agent-1", count=10_000):
        task = await queue.start(entry.task_id, "agent-1", entry.agent_type)
        assert task is not None, f"task {entry.task_id} could not start"
        assert await queue.finish(task, "agent-1", result={"ok": True})
        assert await queue.complete(entry, "agent-1", result={"ok": True})
    done = 0
    for task_id in set(ids):
        found = await queue.get(task_id)
        done += found is not None and found.status.value == "succeeded"
    return done


async def _usage_counts(client: Redis) -> tuple[int, int]:
    """(calls the ledger's hour counts, attempt ids marked seen): a usage counted twice shows
    as more calls than records."""
    calls = (await Ledger(client).totals("hour", NOW)).calls
    seen = 0
    for i in range(USAGE):
        seen += int(await client.exists(cost_keys.seen(f"call-{i}:1")))
    return calls, seen


@pytest.mark.parametrize("group", ["manager", "cost"])
def test_a_primary_killed_under_load_loses_nothing(tmp_path: Path, group: str) -> None:
    wanted = slot(k.DELAYED if group == "manager" else cost_keys.RESERVED)
    with redis_cluster(tmp_path / "cluster", node_timeout_ms=1000) as cluster:
        victim = _owner(cluster, wanted)
        assert victim is not None and slot(k.DELAYED) != slot(cost_keys.RESERVED)

        async def scenario() -> dict[str, Any]:
            client = connect_url(cluster.url, max_connections=200)
            try:
                await _replicas_in_sync(client)
                REFUSED.clear()
                counts = await _load(client, _kill_and_replace(cluster, victim, wanted))
                await asyncio.to_thread(cluster.wait_ok, 60)
                counts["completed"] = await asyncio.wait_for(_drain(client, counts["ids"]), 120)
                counts["usage_calls"], counts["usage_seen"] = await _usage_counts(client)
                return counts
            finally:
                await client.aclose()

        counts = asyncio.run(scenario())
        accepted = len(set(counts["ids"]))
        print(
            f"\nfailover of the {{{group}}} slot: killed primary :{victim.port}, promoted "
            f":{counts['promoted']}; accepted {accepted}, completed {counts['completed']}; "
            f"usage records {USAGE} → counted {counts['usage_calls']} (duplicated "
            f"{counts['usage_calls'] - USAGE}); limit {LIMIT} → admitted {counts['admitted']} "
            f"of {CALLERS} (overshoot {max(0, counts['admitted'] - LIMIT)}); transient "
            f"refusals retried {dict(REFUSED)}"
        )
        assert counts["promoted"] != victim.port
        assert REFUSED, "no call met the failover: the kill came after the load"
        assert accepted == TASKS
        assert counts["completed"] == accepted
        assert counts["usage_calls"] == USAGE and counts["usage_seen"] == USAGE
        assert counts["admitted"] <= LIMIT + 1


async def _replicas_in_sync(client: Redis) -> None:
    """A fresh cluster's replicas take a moment to sync: WAIT answers 0 until they do."""
    queue = TaskQueue(client, replication=CONFIRMED)
    ledger = Ledger(client, CONFIRMED)
    earlier = NOW - dt.timedelta(hours=2)  # outside the hour the test counts
    usage = UsageRecord("warm:1", "gpt-5", "coder", "research", 1, 1, Decimal("0"), earlier)
    await _until_accepted("a first submit", lambda: queue.submit("warm", {}, idempotency_key="w"))
    await _until_accepted("a first usage record", lambda: ledger.record(usage))


def _replica_of(cluster: RedisClusterServers, primary: RedisServer) -> RedisServer:
    info = cluster.cli(primary, "INFO", "replication")
    port = int(info.split("slave0:", 1)[1].split("port=", 1)[1].split(",", 1)[0])
    return next(n for n in cluster.nodes if n.port == port)


def test_a_write_that_meets_moved_is_not_accepted_and_its_retry_is(tmp_path: Path) -> None:
    """The #22 edge: a write sent to a node that no longer owns its slot. A cluster pipeline
    would resend it to the new owner on another connection, where WAIT counts replicas for a
    write it did not see. Here MOVED means "not accepted" (NotReplicated, transient), nothing
    is resent; the retry lands on the new owner, confirmed by its own WAIT."""
    key = k.queued_counter("edge")
    with redis_cluster(tmp_path / "cluster", node_timeout_ms=1000) as cluster:
        owner = _owner(cluster, slot(key))
        assert owner is not None
        replica = _replica_of(cluster, owner)

        async def scenario() -> tuple[str, int, int]:
            client = connect_url(cluster.url, max_connections=20)
            try:
                await _replicas_in_sync(client)
                incr = client.register_script("return redis.call('INCR', KEYS[1])")
                await _until_accepted(
                    "a first write", lambda: replicated(client, incr, [key], [], CONFIRMED)
                )
                # A manual failover while the client's slot map still names the old owner.
                await asyncio.to_thread(cluster.cli, replica, "CLUSTER", "FAILOVER")
                for _ in range(100):
                    if await asyncio.to_thread(_owner, cluster, slot(key)) == replica:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the manual failover did not complete in 10 s")
                assert client.get_node_from_key(key) == _node(client, owner), "map not stale"
                try:
                    await replicated(client, incr, [key], [], CONFIRMED)
                except NotReplicated as err:
                    refused = str(err)
                else:
                    raise AssertionError("a write that met MOVED was answered as accepted")
                value = await _until_accepted(
                    "the retry", lambda: replicated(client, incr, [key], [], CONFIRMED)
                )
                return refused, int(value), int(cluster.cli(replica, "GET", key).strip())
            finally:
                await client.aclose()

        refused, value, on_new_owner = asyncio.run(scenario())
        print(f"\nwrite after a manual failover: {refused}; the retry counted {value}")
        assert "owner changed" in refused and "MOVED" in refused.upper()
        assert value == 2, "the refused write took effect, or the retry ran twice"
        assert on_new_owner == 2, "the new owner does not hold the retried write"


def _node(client: Any, server: RedisServer) -> Any:
    return client.get_node(host="127.0.0.1", port=server.port)
