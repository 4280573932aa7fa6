"""The dispatcher's loops against a real redis-server (standalone and cluster): room that
frees for one agent type is used at once, however long another type's loop waits for work."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contracts.settings.manager import ManagerSettings
from runtime.manager.balancing import Strategy, make_balancer
from runtime.manager.dispatcher import Dispatcher
from runtime.manager.metrics import ManagerMetrics
from runtime.manager.queue import Taken, TaskQueue
from runtime.manager.registry import AgentProfile, AgentRegistry
from runtime.service.redis import connect_url
from tests.redis_backends import Backend, backends

redis = backends(appendfsync="always")

# Longer than the test may take: a loop that blocks this long on one type's empty streams
# while another type's room is free would fail the test by its timeout.
IDLE_BLOCK_MS = 60_000


def settings(tmp_path: Path, url: str) -> ManagerSettings:
    token = tmp_path / "token"
    token.write_text("unused\n")
    return ManagerSettings(
        agent_types=["coder", "scanner"],
        redis_url=url,
        api_token_file=token,
        agent_token_file=token,
        webhook_token_file=token,
        instance_id="manager-0",
    )


def test_a_full_type_gets_its_next_task_when_room_frees_while_another_type_waits(
    redis: Backend, tmp_path: Path
) -> None:
    """`coder` has one agent with room for one task, `scanner` an idle agent and no work: the
    scanner loop blocks on its empty streams. The second coder task is assigned as soon as the
    first completes, not when the scanner loop's read times out."""

    async def scenario() -> None:
        client = connect_url(redis.url)
        s = settings(tmp_path, redis.url)
        queue = TaskQueue(client, max_queued_per_type=100, max_attempts=3)
        registry = AgentRegistry(client, heartbeat_ttl_s=600)
        await registry.register(AgentProfile("coder-1", "coder", capacity=1))
        await registry.register(AgentProfile("scanner-1", "scanner", capacity=4))
        balancer = make_balancer(Strategy.LEAST_CONNECTIONS)
        dispatcher = Dispatcher(client, queue, registry, balancer, ManagerMetrics(), s)
        await dispatcher.sync()
        stop = asyncio.Event()
        loops = [
            asyncio.create_task(dispatcher.follow_events(stop)),
            *(
                asyncio.create_task(_loop(dispatcher, t, stop))
                for t in ("scanner", "coder")  # scanner first: it blocks before coder runs
            ),
        ]
        try:
            first = (await queue.submit("coder", {"n": 1})).task_id
            second = (await queue.submit("coder", {"n": 2})).task_id
            entry = await _read_one(queue, "coder-1")
            assert entry.task_id == first  # the agent had room for one: the second waits
            (started,) = await queue.start_many([entry], "coder-1")
            assert started is not None
            assert await queue.complete(entry, "coder-1", result={"ok": True}, finishing=1)
            # The completion frees the room; the coder loop assigns the second at once.
            nxt = await asyncio.wait_for(_read_one(queue, "coder-1"), timeout=20)
            assert nxt.task_id == second
        finally:
            stop.set()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await client.aclose()

    asyncio.run(scenario())


async def _loop(dispatcher: Dispatcher, agent_type: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await dispatcher.dispatch_once(agent_type, IDLE_BLOCK_MS)


async def _read_one(queue: TaskQueue, agent_id: str) -> Taken:
    while True:
        entries = await queue.read_inbox(agent_id, count=1, block_ms=1000)
        if entries:
            return entries[0]
