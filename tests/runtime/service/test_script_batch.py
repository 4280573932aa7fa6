"""ScriptBatch on a real redis-server: calls of one script made in the same event-loop turn go
in one pipeline (one connection), each with its own answer; a pipeline that fails fails every
call of it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from runtime.service.redis import ScriptBatch
from tests.servers import redis_server

INCR_BY: str = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


async def _connections(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_connections_received"])


def test_calls_of_one_turn_share_one_pipeline_and_keep_their_own_answers(tmp_path: Path) -> None:
    async def scenario() -> None:
        with redis_server(tmp_path / "redis") as server:
            probe = Redis.from_url(server.url)
            redis = Redis.from_url(server.url)
            batch = ScriptBatch(redis, redis.register_script(INCR_BY))
            before = await _connections(probe)
            answers = await asyncio.gather(*(batch([f"k{i % 3}"], [i]) for i in range(30)))
            # One new connection for 30 concurrent calls: a lone call each would open many.
            assert await _connections(probe) - before == 1
            # Every call ran once, in order, and got its own answer.
            totals = [0, 0, 0]
            expected = []
            for i in range(30):
                totals[i % 3] += i
                expected.append(totals[i % 3])
            assert answers == expected
            assert [int(await probe.get(f"k{j}")) for j in range(3)] == totals
            # A later turn is its own pipeline.
            assert await batch(["k0"], [1]) == totals[0] + 1
            await redis.aclose()
            await probe.aclose()

    asyncio.run(scenario())


def test_a_failed_pipeline_fails_every_call_of_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        with redis_server(tmp_path / "redis") as server:
            redis = Redis.from_url(server.url)
            batch = ScriptBatch(redis, redis.register_script(INCR_BY))
            assert await batch(["k"], [1]) == 1
            server.process.kill()
            server.process.wait()
            results = await asyncio.gather(
                *(batch(["k"], [1]) for _ in range(5)), return_exceptions=True
            )
            assert all(isinstance(r, RedisConnectionError) for r in results), results
            await redis.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("cancelled", [0, 2])
def test_a_cancelled_caller_leaves_the_others_their_answers(tmp_path: Path, cancelled: int) -> None:
    async def scenario() -> None:
        with redis_server(tmp_path / "redis") as server:
            redis = Redis.from_url(server.url)
            batch = ScriptBatch(redis, redis.register_script(INCR_BY))
            calls = [asyncio.ensure_future(batch(["k"], [1])) for _ in range(4)]
            await asyncio.sleep(0)
            for call in calls[:cancelled]:
                call.cancel()
            done = await asyncio.gather(*calls[cancelled:])
            assert sorted(done) == list(range(cancelled + 1, 5))
            await redis.aclose()

    asyncio.run(scenario())


def test_one_round_trip_per_batch_and_a_flushed_script_runs_once(tmp_path: Path) -> None:
    """A batch is one EVALSHA pipeline (no SCRIPT EXISTS before it); after SCRIPT FLUSH (a
    restarted or replaced server) the script is loaded again and each call runs exactly once."""

    async def scenario() -> None:
        with redis_server(tmp_path / "redis") as server:
            probe = Redis.from_url(server.url)
            redis = Redis.from_url(server.url)
            batch = ScriptBatch(redis, redis.register_script(INCR_BY))
            assert await batch(["k"], [1]) == 1
            await probe.config_resetstat()
            assert sorted(await asyncio.gather(*(batch(["k"], [1]) for _ in range(5)))) == [
                2, 3, 4, 5, 6,
            ]  # fmt: skip
            commands = await probe.info("commandstats")
            assert "cmdstat_script|exists" not in commands, commands
            assert commands["cmdstat_evalsha"]["calls"] == 5
            await probe.script_flush()
            answers = await asyncio.gather(*(batch(["k"], [1]) for _ in range(3)))
            assert sorted(answers) == [7, 8, 9]
            assert int(await probe.get("k")) == 9, "every call ran once"
            await redis.aclose()
            await probe.aclose()

    asyncio.run(scenario())
