"""Benchmark (not a test): the cost engine's usage records per second and check-and-reserve
latency, beside redis-benchmark running the same Lua script on the same redis-server.

    .venv/bin/python bench/cost_engine.py [--records 50000] [--reserves 5000]

Starts its own redis-server on 127.0.0.1 (a free port, AOF everysec as staging deploys it), then:
- records/s pipelined: Ledger.record_many in batches of 100 from 4 concurrent writers;
- records/s concurrent: 64 coroutines each awaiting Ledger.record one at a time;
- redis-benchmark: EVALSHA of the very same record script with the same KEYS/ARGV (a random
  idempotency key per call), -c 50 -P 16, and plain HINCRBY for scale;
- check-and-reserve latency: CostEngine.reserve one at a time (downgrade read, limiter script,
  budget script: three round trips), p50 / p99, beside redis-benchmark's EVALSHA latency.
Target: at least half of redis-benchmark's rate for the equivalent command.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

# Run as a script from anywhere: the repository root holds the packages and tests.servers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts.config.cost import CostConfig
from runtime.cost.engine import CostEngine
from runtime.cost.ledger import Ledger, UsageRecord
from runtime.cost.metrics import CostMetrics
from runtime.service.redis import NO_REPLICAS, Replication
from tests.servers import redis_server

AT = dt.datetime.now(dt.UTC)
COST = CostConfig.model_validate(
    {
        "budget": {"dailyUsd": "1000000", "monthlyUsd": "10000000"},
        "teamBudgets": {"research": {"dailyUsd": "1000000", "monthlyUsd": "10000000"}},
        "rateLimits": {
            "overall": {"requests": 10_000_000},
            "teams": {"research": {"tokens": 10**12}},
        },
    }
)


def usage(i: int) -> UsageRecord:
    return UsageRecord(
        f"bench-{i}:1", "gpt-4o", "coder", "research", 1200, 300, Decimal("0.006"), AT
    )


async def pipelined(url: str, n: int, writers: int = 4, batch: int = 100) -> float:
    client = Redis.from_url(url, max_connections=writers * 2)
    ledger = Ledger(client)
    await ledger.record(usage(-1))  # loads the script
    per = n // writers

    async def writer(w: int) -> None:
        for start in range(w * per, (w + 1) * per, batch):
            await ledger.record_many(
                [usage(i) for i in range(start, min(start + batch, (w + 1) * per))]
            )

    t = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    rate = per * writers / (time.perf_counter() - t)
    await client.aclose()
    return rate


async def concurrent(url: str, n: int, workers: int = 64) -> float:
    client = Redis.from_url(url, max_connections=workers)
    ledger = Ledger(client)
    offset = 10_000_000
    per = n // workers

    async def worker(w: int) -> None:
        for i in range(offset + w * per, offset + (w + 1) * per):
            await ledger.record(usage(i))

    t = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    rate = per * workers / (time.perf_counter() - t)
    await client.aclose()
    return rate


async def reserve_latency(url: str, n: int) -> tuple[float, float]:
    client = Redis.from_url(url)
    engine = CostEngine(client, COST, CostMetrics(CollectorRegistry()))
    samples = []
    for i in range(n):
        t = time.perf_counter()
        await engine.reserve(f"r-{i}", 1, "research", "gpt-4o", 2000, 500)
        samples.append(time.perf_counter() - t)
    await client.aclose()
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1e6, q[98] * 1e6


async def script_command(url: str) -> list[str]:
    """The record script's EVALSHA exactly as the ledger sends it, with a random key."""
    client = Redis.from_url(url)
    ledger = Ledger(client)
    keys, args = ledger.script_call(usage(0))
    sha = await client.script_load(ledger._record.script)
    await client.aclose()
    keys[0] = keys[0].replace("bench-0:1", "__rand_int__")
    args[1] = "__rand_int__"
    return ["EVALSHA", sha, str(len(keys)), *keys, *(str(a) for a in args)]


async def reserve_and_record(
    client: Redis, calls: int, concurrency: int, replication: Replication = NO_REPLICAS
) -> tuple[float, list[float]]:
    """The governed call as a worker makes it: check-and-reserve, then the usage record that
    settles the reservation, from `concurrency` coroutines; calls/s and each call's seconds."""
    engine = CostEngine(client, COST, CostMetrics(CollectorRegistry()), replication=replication)
    run = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(concurrency)
    samples: list[float] = []

    async def one(i: int) -> None:
        async with gate:
            t = time.perf_counter()
            await engine.reserve(f"{run}-{i}", 1, "research", "gpt-4o", 2000, 500)
            await engine.record(f"{run}-{i}", 1, "gpt-4o", "coder", "research", 1200, 300)
            samples.append(time.perf_counter() - t)

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return calls / (time.perf_counter() - t), samples


def redis_benchmark(
    port: int, n: int, command: list[str], pipeline: int = 16, cluster: bool = False
) -> tuple[float, float, float]:
    """requests/s, p50 ms and p99 ms as redis-benchmark reports them; with `cluster`, against
    the cluster `port` belongs to (`--cluster`: `{tag}` in a key routes it to every shard)."""
    binary = shutil.which("redis-benchmark")
    assert binary, "redis-benchmark is missing (Debian redis-tools)"
    out = subprocess.run(  # noqa: S603 - fixed binary, our own arguments
        [
            binary,
            *(["--cluster"] if cluster else []),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-n",
            str(n),
            "-c",
            "50",
            "-P",
            str(pipeline),
            "-r",
            "100000000",
            *command,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"throughput summary: ([\d.]+) requests per second", out).group(1))  # type: ignore[union-attr]
    lat = re.search(
        r"latency summary \(msec\):\s+avg\s+min\s+p50\s+p95\s+p99\s+max\s+([\d.\s]+)", out
    )
    assert lat is not None
    values = [float(v) for v in lat.group(1).split()]
    return rate, values[2], values[4]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--reserves", type=int, default=5_000)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as server:
        command = asyncio.run(script_command(server.url))
        piped = asyncio.run(pipelined(server.url, opts.records))
        conc = asyncio.run(concurrent(server.url, opts.records))
        rb_script, rb_p50, rb_p99 = redis_benchmark(server.port, opts.records * 2, command)
        rb_script_1, rb1_p50, rb1_p99 = redis_benchmark(
            server.port, opts.records, command, pipeline=1
        )
        rb_hincr, _, _ = redis_benchmark(
            server.port, opts.records * 4, ["HINCRBY", "bench:h", "f:__rand_int__", "1"]
        )
        p50, p99 = asyncio.run(reserve_latency(server.url, opts.reserves))
    print(f"usage records/s, pipelined (4 writers × batches of 100): {piped:,.0f}")
    print(f"usage records/s, concurrent (64 coroutines, one call each): {conc:,.0f}")
    print(
        f"redis-benchmark EVALSHA record script, -c 50 -P 16: {rb_script:,.0f}/s "
        f"(p50 {rb_p50} ms, p99 {rb_p99} ms)"
    )
    print(
        f"redis-benchmark EVALSHA record script, -c 50 -P 1: {rb_script_1:,.0f}/s "
        f"(p50 {rb1_p50} ms, p99 {rb1_p99} ms)"
    )
    print(f"redis-benchmark HINCRBY, -c 50 -P 16: {rb_hincr:,.0f}/s")
    print(f"ratio pipelined / redis-benchmark -P 16: {piped / rb_script:.2f}")
    print(f"ratio concurrent / redis-benchmark -P 1: {conc / rb_script_1:.2f}")
    print(f"check-and-reserve latency (3 round trips): p50 {p50:.0f} µs, p99 {p99:.0f} µs")


if __name__ == "__main__":
    main()
