"""Benchmark (not a test): the agent manager end to end against arq on the same Redis.

    .venv/bin/python bench/manager.py [--tasks 5000] [--workers 2] [--capacity 32]

In one run, on one redis-server (AOF, fsync every second — the production setting):

* ours, queue level — tasks submitted with the task queue's client (as arq's `enqueue_job`
  submits), dispatched by a real manager process, run by real worker processes with the work
  handler at zero latency. Delivery: at-least-once with acknowledgement, visibility timeout,
  per-agent inboxes.
* ours, HTTP — the same through the manager's authenticated task API.
* arq — the same number of no-op jobs through an arq worker process whose max_jobs equals our
  total capacity and whose poll delay is 1 ms (arq's default 0.5 s would cap it far lower).

It prints tasks/s and the submit-to-start latency p50/p99 of each, the ratio to arq, and the
balancer's selection time at 100 / 1,000 / 10,000 agents (bench/balancer.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.balancer import measure
from ops.devstack.load import percentile
from runtime.manager import keys as k
from runtime.manager.balancing import Strategy
from runtime.manager.queue import TaskQueue
from runtime.service.redis import NO_REPLICAS, Replication
from tests.runtime.processes import (
    ServiceProcess,
    Tokens,
    manager_env,
    running,
    worker_env,
)
from tests.servers import redis_server

TYPE = "bench"

ARQ_WORKER = """
import asyncio, sys
from arq.connections import RedisSettings
from arq.worker import Worker

async def noop(ctx):
    return None

port, max_jobs = int(sys.argv[1]), int(sys.argv[2])
worker = Worker(
    functions=[noop],
    redis_settings=RedisSettings(host="127.0.0.1", port=port),
    max_jobs=max_jobs,
    poll_delay=0.001,
    keep_result=600,
    log_results=False,
)
worker.run()
"""


async def wait_finished(redis: Redis, ids: list[str]) -> None:
    pending = list(ids)
    while pending:
        pipe = redis.pipeline(transaction=False)
        for task_id in pending:
            pipe.hget(k.task_key(task_id), "status")
        statuses = await pipe.execute()
        pending = [i for i, s in zip(pending, statuses, strict=True) if s != b"succeeded"]
        if pending:
            await asyncio.sleep(0.05)


async def latencies(redis: Redis, ids: list[str]) -> list[float]:
    pipe = redis.pipeline(transaction=False)
    for task_id in ids:
        pipe.hmget(k.task_key(task_id), ["submitted_at", "started_at"])
    return [float(s) - float(q) for q, s in await pipe.execute()]


async def measured(
    url: str, submit_all: Callable[[], Awaitable[list[str]]]
) -> tuple[float, list[float]]:
    """Tasks/s from the first submit until every task finished, and submit→start latencies."""
    redis = Redis.from_url(url)
    started = time.perf_counter()
    ids = await submit_all()
    await wait_finished(redis, ids)
    elapsed = time.perf_counter() - started
    waits = await latencies(redis, ids)
    await redis.aclose()
    return len(ids) / elapsed, waits


async def submit_queued(
    redis: Redis,
    agent_type: str,
    tasks: int,
    concurrency: int,
    replication: Replication = NO_REPLICAS,
    latencies: list[float] | None = None,
) -> list[str]:
    """Submit no-op tasks through the task queue's client, as arq's `enqueue_job` submits;
    `replication`: replicas that must confirm each submit (WAIT); each submit's own duration
    goes into `latencies` when given."""
    queue = TaskQueue(
        redis, max_queued_per_type=10_000_000, max_attempts=3, replication=replication
    )
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with gate:
            started = time.perf_counter()
            task_id = (await queue.submit(agent_type, {"i": i})).task_id
            if latencies is not None:
                latencies.append(time.perf_counter() - started)
            return task_id

    return list(await asyncio.gather(*(one(i) for i in range(tasks))))


async def ours_queue_level(url: str, tasks: int, concurrency: int) -> tuple[float, list[float]]:
    redis = Redis.from_url(url)
    try:
        return await measured(url, lambda: submit_queued(redis, TYPE, tasks, concurrency))
    finally:
        await redis.aclose()


async def ours_http(
    url: str, manager: str, token: str, tasks: int, concurrency: int
) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=manager, headers={"Authorization": f"Bearer {token}"}, limits=limits
    ) as http:

        async def one(i: int) -> str:
            async with gate:
                r = await http.post("/api/v1/tasks", json={"agent_type": TYPE, "payload": {"i": i}})
                r.raise_for_status()
                return str(r.json()["task_id"])

        async def submit_all() -> list[str]:
            return list(await asyncio.gather(*(one(i) for i in range(tasks))))

        return await measured(url, submit_all)


async def http_floor(manager: str, requests: int, concurrency: int) -> float:
    """Requests/s of the manager's `GET /health` (no Redis, no body) with the same client
    (httpx): the client's own ceiling, far below the server's (bench/hot_path.py, wrk)."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=manager, limits=limits) as http:

        async def one() -> None:
            async with gate:
                (await http.get("/health")).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        return requests / (time.perf_counter() - started)


async def arq_run(
    port: int, tasks: int, concurrency: int, finish: bool = False
) -> tuple[float, list[float]]:
    """arq's no-op jobs/s and enqueue→start latencies (enqueue→finish with `finish`)."""
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.jobs import Job

    pool = await create_pool(RedisSettings(host="127.0.0.1", port=port))
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Job:
        async with gate:
            job = await pool.enqueue_job("noop", _job_id=f"bench-{i}")
            assert job is not None
            return job

    started = time.perf_counter()
    jobs = await asyncio.gather(*(one(i) for i in range(tasks)))
    waits = []
    for job in jobs:
        info = await job.result_info()
        while info is None:
            await asyncio.sleep(0.05)
            info = await job.result_info()
        end = info.finish_time if finish else info.start_time
        waits.append((end - info.enqueue_time).total_seconds())
    elapsed = time.perf_counter() - started
    await pool.aclose()
    return tasks / elapsed, waits


def row(name: str, rate: float, waits: list[float], reference: float | None) -> str:
    ratio = f"{rate / reference:.2f}×" if reference else "1.00×"
    return (
        f"| {name} | {rate:,.0f} | {statistics.median(waits) * 1000:.1f} | "
        f"{percentile(waits, 0.99) * 1000:.1f} | {ratio} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--capacity", type=int, default=32, help="tasks per worker at once")
    parser.add_argument("--concurrency", type=int, default=64, help="submitters at once")
    parser.add_argument("--calls", type=int, default=20_000, help="balancer selections per row")
    args = parser.parse_args()
    os.environ.setdefault("AGENTOPS_LOG_LEVEL", "warning")
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp) / "redis") as server:
        root = Path(tmp)
        tokens = Tokens.create(root / "tokens")
        mgr = ServiceProcess(
            "manager",
            manager_env(server.url, tokens, [TYPE], strategy="least_connections"),
            root / "manager.log",
        )
        workers = [
            ServiceProcess(
                "worker",
                worker_env(server.url, tokens, mgr.url, TYPE, f"bench-{i}", capacity=args.capacity),
                root / f"worker-{i}.log",
            )
            for i in range(args.workers)
        ]
        results: dict[str, tuple[float, list[float]]] = {}
        with running(mgr, *workers):
            time.sleep(1.5)  # every worker registered and mirrored by the manager
            asyncio.run(ours_queue_level(server.url, 500, args.concurrency))  # warm-up
            results["ours, queue level"] = asyncio.run(
                ours_queue_level(server.url, args.tasks, args.concurrency)
            )
            results["ours, HTTP task API"] = asyncio.run(
                ours_http(server.url, mgr.url, tokens.api, args.tasks, args.concurrency)
            )
            floor = asyncio.run(http_floor(mgr.url, 2000, args.concurrency))
        arq = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", ARQ_WORKER, str(server.port), str(args.workers * args.capacity)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)
            asyncio.run(arq_run(server.port, 500, args.concurrency))  # warm-up
            asyncio.run(Redis.from_url(server.url).flushdb())
            results["arq 0.28 (reference)"] = asyncio.run(
                arq_run(server.port, args.tasks, args.concurrency)
            )
        finally:
            os.kill(arq.pid, signal.SIGTERM)
            arq.wait(timeout=30)

    reference = results["arq 0.28 (reference)"][0]
    print(
        f"\n{args.tasks} tasks, {args.workers} workers × capacity {args.capacity}, "
        f"{args.concurrency} concurrent submitters, no-op work\n"
    )
    print("| system | tasks/s | submit→start p50 ms | p99 ms | vs arq |")
    print("|---|---:|---:|---:|---:|")
    for name, (rate, waits) in results.items():
        print(row(name, rate, waits, reference))
    print(
        f"\nGET /health of the same manager with the same client (httpx): {floor:,.0f} "
        "requests/s. This bounds the client, not the manager: bench/hot_path.py measures "
        "the server with wrk."
    )
    print("\nBalancer selection (score_based / weighted_round_robin), µs:\n")
    print("| strategy | agents | p50 µs | p99 µs |")
    print("|---|---:|---:|---:|")
    for strategy in (Strategy.SCORE_BASED, Strategy.WEIGHTED_ROUND_ROBIN):
        for agents in (100, 1_000, 10_000):
            p50, p99 = measure(strategy, agents, args.calls)
            print(f"| {strategy.value} | {agents:,} | {p50:.1f} | {p99:.1f} |")


if __name__ == "__main__":
    main()
