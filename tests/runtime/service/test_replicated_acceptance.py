"""Replicated acceptance against a real primary and replica: with a replica required, a submit,
a usage record and a reservation are answered only once the replica confirmed them (WAIT); a
replica that does not answer (SIGSTOP) turns them into a retryable 503 / NotReplicated, and the
retry under the same idempotency key, once the replica is back, finds the first write and
creates nothing twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from runtime.cost.budgets import BudgetLine
from runtime.cost.ledger import Ledger, UsageRecord, to_nano
from runtime.cost.reservations import Reservations
from runtime.manager import keys as k
from runtime.service.redis import NotReplicated, Replication, connect_url
from tests.runtime.manager.test_service import manager, submit, tokens  # noqa: F401
from tests.runtime.processes import Tokens, running
from tests.servers import RedisServer, redis_primary_and_replica

NOW = dt.datetime.now(dt.UTC)
ONE = Replication(replicas=1, timeout_ms=300)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and one replica of it, both real redis-servers on 127.0.0.1."""
    with redis_primary_and_replica(tmp_path, appendfsync="always") as (primary, replica):
        yield primary, replica
        replica.process.send_signal(signal.SIGCONT)  # never leave it stopped


def test_a_submit_is_503_until_the_replica_confirms_and_the_retry_is_no_duplicate(
    pair: tuple[RedisServer, RedisServer],
    tokens: Tokens,  # noqa: F811
    tmp_path: Path,
) -> None:
    primary, replica = pair
    mgr = manager(primary, tokens, tmp_path, redis_min_replicas=1, redis_replica_timeout_ms=300)
    with running(mgr):
        assert submit(mgr, tokens, idempotency_key="first").status_code == 202
        replica.process.send_signal(signal.SIGSTOP)
        try:
            refused = submit(mgr, tokens, idempotency_key="second")
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "2"
        finally:
            replica.process.send_signal(signal.SIGCONT)
        retried = submit(mgr, tokens, idempotency_key="second")
        assert retried.status_code == 202, retried.text
        assert retried.json()["duplicate"] is True, "the first write was kept, not made twice"

    async def count() -> int:
        client = connect_url(replica.url)
        try:
            return int(await client.get(k.queued_counter("coder")) or 0)
        finally:
            await client.aclose()

    assert asyncio.run(count()) == 2, "the replica holds both tasks, each once"


def test_usage_and_reservation_wait_for_the_replica(pair: tuple[RedisServer, RedisServer]) -> None:
    primary, replica = pair
    usage = UsageRecord(
        idempotency_key="task-1:1",
        model="gpt-5",
        agent_type="coder",
        team="research",
        input_tokens=1000,
        output_tokens=200,
        cost_usd=Decimal("0.01"),
        at=NOW,
    )
    line = BudgetLine("platform", "day", to_nano(Decimal(100)))

    async def scenario() -> None:
        client = connect_url(primary.url)
        ledger, reservations = Ledger(client, ONE), Reservations(client, ONE)
        assert (await ledger.record(usage)).recorded
        replica.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(NotReplicated, match="0 of 1 replicas"):
                await reservations.reserve("call-2", "research", 10, [line], NOW, 60)
            with pytest.raises(NotReplicated):
                await ledger.record(
                    UsageRecord(**{**usage.__dict__, "idempotency_key": "task-2:1"})
                )
        finally:
            replica.process.send_signal(signal.SIGCONT)
        again = await reservations.reserve("call-2", "research", 10, [line], NOW, 60)
        assert not again.created, "the retried reservation found the first one"
        replay = await ledger.record(
            UsageRecord(**{**usage.__dict__, "idempotency_key": "task-2:1"})
        )
        assert not replay.recorded, "the retried record found the first one: counted once"
        assert (await ledger.totals("day", NOW)).calls == 2
        await client.aclose()

    asyncio.run(scenario())
