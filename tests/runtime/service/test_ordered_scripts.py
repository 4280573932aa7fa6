"""OrderedScripts on a real redis-server: script calls on one client run in the order they
are made, however many are out at once, each with its own answer; an error answers its own
call only; calls of scripts the server lost (SCRIPT FLUSH, as after a restart) are loaded and
answered, and a call sent by text is never overtaken."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from runtime.service.redis import ordered
from tests.servers import redis_server

LOG_A = "redis.call('RPUSH', KEYS[1], 'a' .. ARGV[1]) return redis.call('LLEN', KEYS[1])"
LOG_B = (
    "if ARGV[1] == 'bad' then return redis.error_reply('refused') end "
    "redis.call('RPUSH', KEYS[1], 'b' .. ARGV[1]) return redis.call('LLEN', KEYS[1])"
)


async def _connections(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_connections_received"])


def test_calls_run_in_the_order_they_are_made_with_their_own_answers(tmp_path: Path) -> None:
    async def scenario() -> None:
        with redis_server(tmp_path / "redis") as server:
            probe = Redis.from_url(server.url)
            redis = Redis.from_url(server.url)
            a, b = redis.register_script(LOG_A), redis.register_script(LOG_B)
            stream = ordered(redis)
            assert ordered(redis) is stream, "one stream per client"
            before = await _connections(probe)
            made: list[str] = []
            answers: list[asyncio.Future[object]] = []

            async def caller(i: int) -> None:
                for step in range(5):  # each caller waits for its answer, then calls again
                    script, tag = (a, "a") if (i + step) % 2 else (b, "b")
                    made.append(f"{tag}{i}.{step}")
                    answer = stream.call(script, ["log"], [f"{i}.{step}"])
                    answers.append(answer)
                    await answer

            await asyncio.gather(*(caller(i) for i in range(8)))
            log = [v.decode() for v in await probe.lrange("log", 0, -1)]
            assert log == made, "the server ran them in the order they were made"
            assert [f.result() for f in answers] == list(range(1, 41)), "each its own answer"
            assert await _connections(probe) - before == 1, "one connection, one at a time"
            await redis.aclose()
            await probe.aclose()

    asyncio.run(scenario())


def test_an_error_answers_its_own_call_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        with redis_server(tmp_path / "redis") as server:
            redis = Redis.from_url(server.url)
            b = redis.register_script(LOG_B)
            stream = ordered(redis)
            calls = [stream.call(b, ["log"], [v]) for v in ("1", "bad", "2")]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert results[0] == 1 and results[2] == 2
            assert isinstance(results[1], ResponseError) and "refused" in str(results[1])
            await redis.aclose()

    asyncio.run(scenario())


def test_scripts_the_server_lost_are_loaded_and_a_call_by_text_is_not_overtaken(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        with redis_server(tmp_path / "redis") as server:
            redis = Redis.from_url(server.url)
            a, b = redis.register_script(LOG_A), redis.register_script(LOG_B)
            stream = ordered(redis)
            assert await stream.call(b, ["warm"], ["0"]) == 1  # b is loaded now
            await redis.script_flush()  # as a restart: the server knows no script
            first = stream.call(a, ["log"], ["1"], by_text=True)
            second = stream.call(b, ["log"], ["2"])
            assert await asyncio.gather(first, second) == [1, 2]
            assert await redis.lrange("log", 0, -1) == [b"a1", b"b2"]
            assert await stream.call(a, ["log"], ["3"]) == 3, "loaded again: EVALSHA works"
            await redis.aclose()

    asyncio.run(scenario())
