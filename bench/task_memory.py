"""Benchmark (not a test): Redis memory per task, while queued, once finished, and after the
retention has expired its record.

    .venv/bin/python bench/task_memory.py [--tasks 5000] [--payload-bytes 200]

One redis-server (AOF, fsync every second), one task queue. Each task is submitted with an
idempotency key, then taken, assigned, started, given an outcome and completed exactly as the
manager and a worker do (the same Lua scripts). `used_memory` is read after each phase, with
the per-task share of the growth. The retention is set to a few seconds so its expiry can be
watched; production keeps records for `agents.manager.taskRetentionSeconds` (7 days).

What stays after the retention: idempotency keys (their own TTL, 24 h by default), the events
stream (capped at 100,000 entries) and the dead-letter stream (capped by `deadLetterCap`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.manager import keys as k
from runtime.manager.queue import TaskQueue, TokenUsage
from runtime.manager.registry import AgentProfile, AgentRegistry
from tests.servers import redis_server

TYPE = "bench"
AGENT = "bench-agent-0"
RETENTION_S = 3


async def used(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def run(url: str, tasks: int, payload_bytes: int) -> list[tuple[str, int]]:
    redis = Redis.from_url(url)
    queue = TaskQueue(redis, max_queued_per_type=tasks + 1, retention_s=RETENTION_S)
    await AgentRegistry(redis, heartbeat_ttl_s=600).register(AgentProfile(AGENT, TYPE, 10**6))
    payload = {"prompt": "x" * payload_bytes}
    readings = [("empty", await used(redis))]
    for i in range(tasks):
        await queue.submit(TYPE, payload, idempotency_key=f"bench-{i}")
    readings.append(("queued", await used(redis)))
    while taken := await queue.take(TYPE, "dispatcher", count=500):
        for t in taken:
            await queue.assign(t, AGENT)
    for entry in await queue.read_inbox(AGENT, count=tasks):
        record = await queue.start(entry.task_id, AGENT, entry.agent_type)
        assert record is not None
        usage = (TokenUsage("gpt-4o", 120, 200),)
        output = {"answer": "y" * payload_bytes}
        assert await queue.finish(record, AGENT, result=output, usage=usage)
        assert await queue.complete(entry, AGENT, result=output, usage=usage)
    readings.append(("finished (kept for the retention)", await used(redis)))
    time.sleep(RETENTION_S + 1)
    # Expiry is lazy plus a sampling sweep: touching the keys makes it immediate.
    pipe = redis.pipeline(transaction=False)
    for key in [key async for key in redis.scan_iter(k.task_key("*"))]:
        pipe.exists(key)
    await pipe.execute()
    readings.append(("after the retention", await used(redis)))
    await redis.aclose()
    return readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--payload-bytes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, redis_server(Path(directory)) as server:
        readings = asyncio.run(run(server.url, args.tasks, args.payload_bytes))
    base = readings[0][1]
    print(f"{args.tasks} tasks, payload and result of {args.payload_bytes} bytes each")
    print(f"{'phase':<36} {'used_memory':>12} {'bytes/task':>11}")
    for phase, value in readings:
        print(f"{phase:<36} {value:>12,} {(value - base) / args.tasks:>11,.0f}")


if __name__ == "__main__":
    main()
