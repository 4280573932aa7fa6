"""Benchmark (not a test): the runtime on one Redis primary against a 3-shard Redis Cluster, and
what `WAIT` (replicated acceptance) costs per submit.

    .venv/bin/python bench/cluster.py [--tasks 3000] [--submits 3000] [--calls 2000]

One invocation, one machine, one run; each topology in turn:

* `1 primary + 1 replica`: two redis-servers (AOF, fsync every second), the replica attached
  with `--replicaof`, so `WAIT 1` has a replica to wait for;
* `3-shard cluster`: six cluster-mode redis-servers, 3 primaries + 3 replicas
  (`redis-cli --cluster create … --cluster-replicas 1`), the runtime on `redis+cluster://`.

On each, with WAIT N=0 (no replica must confirm) and N=1 (the default wherever a replica
exists), in the order 0, 1, 1, 0 (each figure is both runs together):

* queue level: `--tasks` no-op tasks submitted with the task queue's client, dispatched by a
  real manager process to 2 real worker processes, acknowledged (bench/hot_path.py's queue level:
  tasks/s and submit→finish p50/p99);
* submit alone: `--submits` submits to an agent type no worker serves, from `--concurrency`
  coroutines (submits/s, each submit's p50/p99), and the same one at a time (the latency WAIT
  adds to one submit, without queueing behind the others);
* cost engine: `--calls` governed calls, check-and-reserve then the usage record settling it
  (bench/cost_engine.py: calls/s, p50/p99 of the pair);
* the Redis floor: redis-benchmark SET (50 clients, no pipelining) against the primary, and
  against the cluster with `--cluster`; every rate above is also given as a ratio to it.

All redis-servers and every Python process share this machine's cores: the cluster cannot
show a gain here (its shards compete for the same CPU as everything else); what it shows is the
cost of the cluster client and of WAIT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cost_engine import redis_benchmark, reserve_and_record
from bench.hot_path import PLAIN, load, queue_level
from bench.manager import submit_queued
from ops.devstack.load import percentile
from runtime.service.redis import Replication, connect_url
from tests.runtime.processes import ServiceProcess, Tokens, manager_env, running, worker_env
from tests.servers import redis_cluster, redis_primary_and_replica

SINK = "sink"  # an agent type no worker serves: the submit alone
WAITS = (0, 1)
FLOOR_COMMAND = ["SET", "bench:{tag}:__rand_int__", "x"]


@dataclass(frozen=True)
class Topology:
    name: str
    url: str
    port: int  # one primary (the cluster: any node; redis-benchmark learns the rest)
    cluster: bool


@dataclass
class Row:
    """One measurement on one topology: a rate and the latencies behind it (seconds)."""

    rate: float
    latencies: list[float]


@dataclass
class Results:
    topologies: list[str] = field(default_factory=list)
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)  # (measurement, topology)
    floors: dict[str, float] = field(default_factory=dict)  # topology → redis-benchmark SET/s


@contextmanager
def standalone(root: Path) -> Iterator[Topology]:
    with redis_primary_and_replica(root / "standalone") as (primary, _replica):
        yield Topology("1 primary + 1 replica", primary.url, primary.port, cluster=False)


@contextmanager
def cluster(root: Path) -> Iterator[Topology]:
    with redis_cluster(root / "cluster") as servers:
        yield Topology(
            "3-shard cluster (3 primaries + 3 replicas)",
            servers.url,
            servers.nodes[0].port,
            cluster=True,
        )


@contextmanager
def queue_services(topology: Topology, root: Path, capacity: int) -> Iterator[None]:
    """A manager and 2 workers of the plain agent type on the topology's URL."""
    tokens = Tokens.create(root / "tokens")
    mgr = ServiceProcess(
        "manager",
        manager_env(
            topology.url,
            tokens,
            [PLAIN],
            strategy="least_connections",
            max_queued_per_type=10_000_000,
        ),
        root / "manager.log",
    )
    workers = [
        ServiceProcess(
            "worker",
            worker_env(topology.url, tokens, mgr.url, PLAIN, f"{PLAIN}-{i}", capacity=capacity),
            root / f"worker-{i}.log",
        )
        for i in range(2)
    ]
    with running(mgr, *workers):
        time.sleep(1.5)  # every worker registered and mirrored by the manager
        yield


async def submits(url: str, n: int, concurrency: int, replication: Replication) -> Row:
    client = connect_url(url)
    samples: list[float] = []
    started = time.perf_counter()
    try:
        await submit_queued(client, SINK, n, concurrency, replication, samples)
    finally:
        await client.aclose()
    return Row(n / (time.perf_counter() - started), samples)


async def governed_calls(url: str, n: int, concurrency: int, replication: Replication) -> Row:
    client = connect_url(url)
    try:
        return Row(*await reserve_and_record(client, n, concurrency, replication))
    finally:
        await client.aclose()


def combined(runs: list[Row]) -> Row:
    """Several runs of one measurement as one: every sample, and the rate over their total time."""
    samples = [x for run in runs for x in run.latencies]
    seconds = sum(len(run.latencies) / run.rate for run in runs)
    return Row(len(samples) / seconds, samples)


def measure_waits(
    name: str, results: Results, topology: Topology, run: Callable[[Replication], Row]
) -> None:
    """`run` with WAIT 0 and WAIT 1 in the order 0, 1, 1, 0: a drift in the machine's other
    load over the measurement weighs on both alike."""
    runs: dict[int, list[Row]] = {n: [] for n in WAITS}
    for n in (*WAITS, *reversed(WAITS)):
        runs[n].append(run(Replication(n)))  # the runtime's default WAIT timeout
    for n in WAITS:
        row = combined(runs[n])
        results.rows[(f"{name}, WAIT {n}", topology.name)] = row
        print(
            f"  {name}, WAIT {n}: {row.rate:,.0f}/s, p50 {ms(row.latencies, 0.5)} ms, "
            f"p99 {ms(row.latencies, 0.99)} ms  [load {load()}]",
            flush=True,
        )


def bench_topology(args: argparse.Namespace, topology: Topology, root: Path, out: Results) -> None:
    print(f"\n{topology.name} ({topology.url})  [load {load()}]", flush=True)
    out.topologies.append(topology.name)
    c, url = args.concurrency, topology.url
    with queue_services(topology, root, args.capacity):
        asyncio.run(queue_level(url, 300, c))  # warm-up
        measure_waits(
            "queue level",
            out,
            topology,
            lambda r: Row(*asyncio.run(queue_level(url, args.tasks, c, r))),
        )
    asyncio.run(submits(url, 300, c, Replication(1)))  # warm-up: scripts, connections
    asyncio.run(governed_calls(url, 300, c, Replication(1)))
    measure_waits(
        f"submit alone ({c} at once)",
        out,
        topology,
        lambda r: asyncio.run(submits(url, args.submits, c, r)),
    )
    measure_waits(
        "submit alone (one at a time)",
        out,
        topology,
        lambda r: asyncio.run(submits(url, args.submits // 5, 1, r)),
    )
    measure_waits(
        f"cost engine reserve + record ({c} at once)",
        out,
        topology,
        lambda r: asyncio.run(governed_calls(url, args.calls, c, r)),
    )
    rate, p50, p99 = redis_benchmark(
        topology.port, 200_000, FLOOR_COMMAND, pipeline=1, cluster=topology.cluster
    )
    out.floors[topology.name] = rate
    print(f"  redis-benchmark SET -c 50 -P 1: {rate:,.0f}/s, p50 {p50} ms, p99 {p99} ms")


def ms(values: list[float], q: float) -> str:
    value = statistics.median(values) if q == 0.5 else percentile(values, q)
    return f"{value * 1000:,.1f}"


def report(results: Results) -> None:
    one, many = results.topologies
    print(
        f"\n| measurement | {one}: /s | p50 ms | p99 ms | vs floor | "
        f"{many}: /s | p50 ms | p99 ms | vs floor | cluster / 1 primary |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    names = list(dict.fromkeys(name for name, _ in results.rows))
    for name in names:
        cells = []
        for topology in (one, many):
            row = results.rows[(name, topology)]
            cells += [
                f"{row.rate:,.0f}",
                ms(row.latencies, 0.5),
                ms(row.latencies, 0.99),
                f"{row.rate / results.floors[topology]:.3f}",
            ]
        ratio = results.rows[(name, many)].rate / results.rows[(name, one)].rate
        print(f"| {name} | {' | '.join(cells)} | {ratio:.2f}× |")
    floors = [results.floors[t] for t in (one, many)]
    print(
        f"| redis-benchmark SET -c 50 -P 1 (the floor) | {floors[0]:,.0f} | | | 1 | "
        f"{floors[1]:,.0f} | | | 1 | {floors[1] / floors[0]:.2f}× |"
    )
    for name in names:
        if name.endswith("WAIT 1"):
            base = name.removesuffix("1") + "0"
            costs = ", ".join(
                f"{t}: {results.rows[(name, t)].rate / results.rows[(base, t)].rate:.2f}× the "
                f"rate, p50 {_p50_ms(results, name, t) - _p50_ms(results, base, t):+.2f} ms"
                for t in (one, many)
            )
            print(f"\nWAIT 1 vs WAIT 0, {base.removesuffix(', WAIT 0')}: {costs}")


def _p50_ms(results: Results, name: str, topology: str) -> float:
    return statistics.median(results.rows[(name, topology)].latencies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000, help="queue-level tasks per run")
    parser.add_argument("--submits", type=int, default=3000, help="submits per run")
    parser.add_argument("--calls", type=int, default=2000, help="governed calls per run")
    parser.add_argument("--capacity", type=int, default=32, help="tasks per worker at once")
    parser.add_argument("--concurrency", type=int, default=64, help="submitters at once")
    args = parser.parse_args()
    os.environ.setdefault("AGENTOPS_LOG_LEVEL", "warning")
    print(f"load average at start: {load()}  ({os.cpu_count()} cores)")
    results = Results()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for topology in (standalone, cluster):
            with topology(root) as found:
                bench_topology(args, found, root / found.name.split()[0], results)
    report(results)
    print(
        f"\nload average at end: {load()}. Caveat: all {os.cpu_count()} cores are shared by "
        "every redis-server (2 for the primary + replica, 6 for the cluster), the manager, "
        "the 2 workers and this process: the cluster cannot show a gain on this machine, "
        "what it shows is the cost of the cluster client and of WAIT."
    )


if __name__ == "__main__":
    main()
