"""Benchmark (not a test): the whole local platform end to end with 1, 2 and 4 workers.

    .venv/bin/python bench/local_platform.py [--tasks 2000]

Each run starts the local stack's platform (`agentops dev`'s own code: Redis, cost engine,
manager, N workers, Prometheus, Alertmanager) with the work handler at zero latency, submits
`--tasks` tasks through the manager's HTTP API with 64 concurrent clients and waits until all
have finished. Every task takes the full production path: dispatch through the worker's inbox,
the cost engine's recommendation and check-and-reserve, the usage record, the acknowledgement.
It prints tasks/s and submit→finish latency p50/p95/p99, and the manager's dispatch overhead:
submit → assigned to an agent, under a light load (20 tasks/s) where no queue builds up.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ops.devstack.load import percentile
from tests.e2e.platform import LocalPlatform, local_platform


async def burst(platform: LocalPlatform, tasks: int, rate: float | None) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(64)
    async with httpx.AsyncClient(
        base_url=platform.url("manager"), headers=platform.auth(), timeout=60
    ) as http:

        async def submit(i: int) -> str:
            if rate is not None:
                await asyncio.sleep(i / rate)
            async with gate:
                body = {"agent_type": "code-generator", "payload": {"prompt": f"t{i}"}}
                r = await http.post("/api/v1/tasks", json=body)
                r.raise_for_status()
                return str(r.json()["task_id"])

        ids = await asyncio.gather(*(submit(i) for i in range(tasks)))
        done: dict[str, dict[str, Any]] = {}
        while len(done) < len(ids):
            pending = [i for i in ids if i not in done]
            for answer in await asyncio.gather(
                *(http.get(f"/api/v1/tasks/{i}") for i in pending[:256])
            ):
                record = answer.json()
                if record["status"] in ("succeeded", "failed", "dead_lettered"):
                    done[record["task_id"]] = record
            await asyncio.sleep(0.05)
    return list(done.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    rows = []
    for workers in (1, 2, 4):
        with tempfile.TemporaryDirectory() as tmp, local_platform(Path(tmp), workers=workers) as p:
            time.sleep(1.0)
            asyncio.run(burst(p, 100, None))  # warm-up
            started = time.perf_counter()
            records = asyncio.run(burst(p, args.tasks, None))
            elapsed = time.perf_counter() - started
            latencies = [r["finished_at"] - r["submitted_at"] for r in records]
            light = asyncio.run(burst(p, 200, 20.0))
            overhead = [r["assigned_at"] - r["submitted_at"] for r in light]
            ok = sum(r["status"] == "succeeded" for r in records)
            rows.append(
                (
                    workers,
                    len(records) / elapsed,
                    *(percentile(latencies, q) * 1000 for q in (0.5, 0.95, 0.99)),
                    statistics.median(overhead) * 1000,
                    percentile(overhead, 0.99) * 1000,
                    ok / len(records),
                )
            )
    print(f"\n{args.tasks} tasks per run, work handler at zero latency, 64 concurrent clients\n")
    print(
        "| workers | tasks/s | p50 ms | p95 ms | p99 ms | dispatch overhead p50 ms | p99 ms "
        "| succeeded |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w, rate, p50, p95, p99, o50, o99, ok in rows:
        print(
            f"| {w} | {rate:,.0f} | {p50:.0f} | {p95:.0f} | {p99:.0f} | {o50:.1f} | {o99:.1f} "
            f"| {ok:.0%} |"
        )


if __name__ == "__main__":
    main()
