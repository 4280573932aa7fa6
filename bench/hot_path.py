"""Benchmark (not a test): the runtime's hot path against the machine's floor and the anchors.

    .venv/bin/pip install -e ".[bench]" && scripts/ensure-apt
    .venv/bin/python bench/hot_path.py [--tasks 3000] [--seconds 10] [--cluster]

One invocation, one redis-server (AOF, fsync every second; with `--cluster`, a 3-shard Redis
Cluster of 3 primaries + 3 replicas instead, and no arq or Celery: neither runs on a cluster),
in this order:

* the machine's HTTP floor: `wrk` on the manager's `GET /health` (no Redis, no body);
* `POST /api/v1/tasks` with `wrk` (authenticated, a Lua script writes the body) to an agent type
  no worker serves, so the figure is the submit alone;
* the full governed path: `--tasks` tasks submitted with `wrk` (64 connections) to an agent
  type served by 2 worker processes whose every task takes the production path: dispatch
  to the inbox, start, the cost engine's check-and-reserve, the handler (zero latency),
  the outcome store, the usage record, the acknowledgement;
* the same at half that rate (`wrk` paced by its `delay()`): submit→start latency under a
  steady load;
* both again with the in-process cost gate (workers with AGENTOPS_COST_CONFIG run the cost
  package's reservation and usage scripts on the queue's Redis: no HTTP call per task);
* our queue level: tasks submitted with the task queue's client (as arq's `enqueue_job`),
  dispatched by the manager to 2 workers with no cost engine;
* arq 0.28 with a no-op job (two settings, the better one is the reference);
* Celery 5 with a Redis broker and a no-op task (its own venv, pinned, in ~/.cache);
* redis-benchmark: what the Redis server does by itself;
* then `--rounds` times in turns, the in-process governed path and arq at its best setting,
  with the ratio of each round and their median (a rate on a shared machine drifts by 10 %
  and more between minutes; in turns, both meet the same drift).

It prints tasks/s, submit→finish p50/p99, each ratio to arq, the load average, which client
bounds which figure, and the CPU milliseconds per task of every process involved (a figure
the machine's other load changes far less than a rate).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.cluster import RedisCluster as SyncCluster
from redis.exceptions import ResponseError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.manager import ARQ_WORKER, arq_run, submit_queued
from contracts.settings.service import CLUSTER_SCHEMES
from ops.devstack.load import percentile
from runtime.manager import keys as k
from runtime.manager.constants import Priority
from runtime.service.redis import NO_REPLICAS, Replication, connect_url
from tests.runtime.processes import ServiceProcess, Tokens, manager_env, worker_env
from tests.servers import RedisClusterServers, RedisServer, redis_cluster, redis_server

GOVERNED, LOCAL, PLAIN, SINK = "governed", "governed-local", "plain", "sink"
STAGES = ("wrk", GOVERNED, LOCAL, "queue", "celery")
MODEL = "gpt-4o"
CELERY = "celery[redis]==5.5.3"
REDIS_BENCHMARK = ("redis-benchmark", "-q", "-n", "200000", "-c", "50", "-t", "set", "-p")
# Celery's best for a no-op on 2 cores: one process per core, a deep prefetch, no chatter.
CELERY_WORKER = "-c 2 -P prefork --without-gossip --without-mingle --without-heartbeat -l warning"
PY_SPY_BIN = str(Path(sys.executable).parent / "py-spy")
PY_SPY = ("-r", "200", "-f", "raw", "--nonblocking", "--gil")
CELERY_VENV = Path.home() / ".cache" / "agentops" / "bench" / "celery-5.5.3"

# wrk's Lua: every request a new task; a thread stops after its share (`limit`), and sleeps
# `delay_ms` before each request when paced.
WRK_SUBMIT = """
local token, agent_type, limit, pause = "", "", 0, 0
local sent, answered = 0, 0
function init(args)
  token, agent_type = args[1], args[2]
  limit, pause = tonumber(args[3]), tonumber(args[4])
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end
function request()
  sent = sent + 1
  local body = '{"agent_type":"' .. agent_type .. '","payload":{"i":' .. sent .. '}}'
  return wrk.format(nil, "/api/v1/tasks", nil, body)
end
function delay()
  return pause
end
function response(status, headers, body)
  answered = answered + 1
  if limit > 0 and answered >= limit then
    wrk.thread:stop()
  end
end
"""

CELERY_APP = """
from celery import Celery
import sys
app = Celery("bench", broker=BROKER, backend=BROKER)
app.conf.update(task_acks_late=False, worker_prefetch_multiplier=100, result_expires=600,
                broker_connection_retry_on_startup=True)

@app.task
def noop():
    return None
"""

CELERY_CLIENT = """
import json, sys, time
from bench_celery import app, noop
n = int(sys.argv[1])
noop.delay().get(timeout=30)  # warm-up
submitted, results = [], []
started = time.time()
for _ in range(n):
    submitted.append(time.time())
    results.append(noop.delay())
done = []
for r in results:
    r.get(timeout=120)
    done.append(r.date_done.timestamp())
print(json.dumps({"elapsed": max(done) - started, "submitted": submitted, "done": done}))
"""


Backend = RedisServer | RedisClusterServers


def redis_pids(backend: Backend) -> dict[str, int]:
    """Every redis-server of the backend, for the CPU per task."""
    if isinstance(backend, RedisServer):
        return {"redis": backend.process.pid}
    return {f"redis-{i}": node.process.pid for i, node in enumerate(backend.nodes)}


def sync_client(url: str) -> SyncRedis:
    """A blocking client of the same Redis (a cluster client on a cluster URL)."""
    scheme, _, rest = url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        tls = "s" if scheme == CLUSTER_SCHEMES[1] else ""
        return cast(SyncRedis, SyncCluster.from_url(f"redis{tls}://{rest}"))
    return SyncRedis.from_url(url)


@dataclass
class Figure:
    name: str
    rate: float
    latencies: list[float]  # submit→finish, seconds
    bound_by: str


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (/proc): unlike a rate, what a task costs
    in CPU does not depend on how many other jobs share the cores."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@contextmanager
def cpu_per_task(pids: dict[str, int], tasks: Callable[[], int], label: str) -> Iterator[None]:
    """Print the CPU milliseconds each process spent per task over the block."""
    before = {name: cpu_s(pid) for name, pid in pids.items()}
    yield
    n = tasks()
    used = {name: (cpu_s(pid) - before[name]) * 1000 / max(n, 1) for name, pid in pids.items()}
    parts = ", ".join(f"{name} {ms:.2f}" for name, ms in used.items())
    print(f"CPU per task, {label} ({n} tasks): {sum(used.values()):.2f} ms = {parts}")


@contextmanager
def redis_time(url: str, tasks: Callable[[], int], label: str, top: int = 12) -> Iterator[None]:
    """Print where the Redis server's time went per task over the block (INFO commandstats:
    calls and microseconds per task, scripts and the commands they ran alike). One
    redis-server only: a cluster's nodes keep their own statistics."""
    if urlsplit(url).scheme in CLUSTER_SCHEMES:
        yield
        return
    client = SyncRedis.from_url(url)
    client.config_resetstat()
    yield
    n = max(tasks(), 1)
    stats = cast(dict[str, dict[str, float]], client.info("commandstats"))
    client.close()
    rows = sorted(stats.items(), key=lambda item: -item[1]["usec"])
    parts = ", ".join(
        f"{name.removeprefix('cmdstat_')} {row['calls'] / n:.2f}×/{row['usec'] / n:.0f} µs"
        for name, row in rows[:top]
    )
    total = sum(row["usec"] for row in stats.values()) / n
    print(f"Redis per task, {label}: {total:.0f} µs in commands; top (calls×/µs): {parts}")


# -- wrk ---------------------------------------------------------------------------------------
@dataclass
class WrkResult:
    requests: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(
    url: str,
    seconds: float,
    connections: int,
    script: Path | None,
    *args: str,
    until: Callable[[], bool] | None = None,
) -> WrkResult:
    """Run wrk for `seconds`, or until `until()` holds (wrk sleeps out its duration even when
    every thread stopped itself, so it is interrupted; it prints its summary on SIGINT)."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    wrk = subprocess.Popen(  # noqa: S603 - wrk from PATH, our own arguments
        [*cmd, url, *(["--", *args] if args else [])], stdout=subprocess.PIPE, text=True
    )
    if until is not None:
        deadline = time.monotonic() + seconds
        while wrk.poll() is None and not until() and time.monotonic() < deadline:
            time.sleep(0.05)
        wrk.send_signal(signal.SIGINT)
    out, _ = wrk.communicate(timeout=seconds + 30)
    pct = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+[a-z]+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        requests=int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        rate=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(pct["50"]) if "50" in pct else math.nan,
        p99_ms=_ms(pct["99"]) if "99" in pct else math.nan,
        errors=int(errors.group(1)) if errors else 0,
    )


# -- py-spy ------------------------------------------------------------------------------------
@contextmanager
def profiled(pids: dict[str, int], directory: Path | None) -> Iterator[None]:
    """py-spy sampling each process while the block runs (nothing without a directory)."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    spies = {
        name: subprocess.Popen(  # noqa: S603 - py-spy of our venv, our own pids
            [
                PY_SPY_BIN,
                "record",
                "-p",
                str(pid),
                "-o",
                str(directory / f"{_file(name)}.txt"),
                *PY_SPY,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    }
    try:
        yield
    finally:
        for spy in spies.values():
            spy.send_signal(signal.SIGINT)
        for spy in spies.values():
            spy.wait(timeout=60)
        for name in pids:
            print(summary(name, directory / f"{_file(name)}.txt"))


def _file(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "_", name).strip("_")


def summary(name: str, collapsed: Path, top: int = 12) -> str:
    """Where a process spends its CPU (samples holding the GIL): the frames with the most own
    time, and our own code's frames with the most inclusive time."""
    own: dict[str, int] = {}
    ours: dict[str, int] = {}
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():  # a sample py-spy could not write whole (seen: NUL bytes)
            continue
        frames = [_frame(f) for f in stack.split(";")]
        n = int(count)
        samples += n
        own[frames[-1][0]] = own.get(frames[-1][0], 0) + n
        for frame in {
            f for f, path in frames if path.startswith("runtime/") and path != "runtime/cli.py"
        }:
            ours[frame] = ours.get(frame, 0) + n
    lines = [f"\npy-spy {name}: {samples} samples holding the GIL; top own / our code inclusive"]
    for (f1, n1), (f2, n2) in itertools.zip_longest(
        sorted(own.items(), key=lambda x: -x[1])[:top],
        sorted(ours.items(), key=lambda x: -x[1])[:top],
        fillvalue=("", 0),
    ):
        lines.append(f"  {n1 / samples:6.1%} {f1[:58]:58}  {n2 / samples:6.1%} {f2[:58]}")
    return "\n".join(lines)


def _ours(path: str) -> bool:
    return "runtime/" in path and "-packages/" not in path and not path.endswith("/cli.py")


def _frame(text: str) -> tuple[str, str]:
    """'func (path/to/file.py:12)' → ('func (file.py)', 'path/to/file.py')."""
    func, _, where = text.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{func} ({path.rsplit('/', 1)[-1]})", path


# -- our tasks, read back from Redis -----------------------------------------------------------
async def task_ids(redis: Redis, agent_type: str, since: float) -> list[str]:
    """Every task of this agent type submitted after `since` (from the task records)."""
    keys = [key async for key in redis.scan_iter(match=k.task_key("*"), count=5000)]
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, ["id", "agent_type", "submitted_at"])
    ids = []
    for task_id, kind, submitted in await pipe.execute():
        if task_id and kind == agent_type.encode() and float(submitted) >= since:
            ids.append(task_id.decode())
    return ids


async def timings(redis: Redis, ids: list[str], poll_s: float = 0.2) -> list[list[float]]:
    """Wait until every task succeeded; their (submitted, started, finished) times."""
    pending = list(ids)
    while pending:
        pipe = redis.pipeline(transaction=False)
        for task_id in pending:
            pipe.hget(k.task_key(task_id), "status")
        statuses = await pipe.execute()
        failed = [s for s in statuses if s in (b"failed", b"dead_lettered")]
        if failed:
            raise RuntimeError(f"{len(failed)} tasks did not succeed")
        pending = [i for i, s in zip(pending, statuses, strict=True) if s != b"succeeded"]
        if pending:
            await asyncio.sleep(poll_s)
    pipe = redis.pipeline(transaction=False)
    for task_id in ids:
        pipe.hmget(k.task_key(task_id), ["submitted_at", "started_at", "finished_at"])
    return [[float(x) for x in row] for row in await pipe.execute()]


def through(rows: list[list[float]]) -> tuple[float, list[float]]:
    """Tasks/s from the first submit to the last finish, and submit→finish latencies."""
    elapsed = max(r[2] for r in rows) - min(r[0] for r in rows)
    return len(rows) / elapsed, [r[2] - r[0] for r in rows]


def submitted(sync: SyncRedis, agent_type: str) -> int:
    """Tasks ever submitted for this type: the entries added to its ready streams."""
    total = 0
    for priority in Priority:
        try:
            info = cast(dict[str, int], sync.xinfo_stream(k.ready_stream(agent_type, priority)))
        except ResponseError:  # no such stream yet
            continue
        total += int(info["entries-added"])
    return total


async def wrk_tasks(
    redis_url: str,
    manager: str,
    token: str,
    script: Path,
    *,
    agent_type: str,
    tasks: int,
    seconds: float,
    connections: int,
    pause_ms: int = 0,
    wait: bool = True,
) -> tuple[WrkResult, list[list[float]]]:
    redis = connect_url(redis_url)
    since = time.time()
    share = str(tasks // 2) if tasks else "0"
    until = None
    if tasks:  # stop wrk once every task is in (its threads stop; wrk would sleep on)
        sync = sync_client(redis_url)
        before = submitted(sync, agent_type)
        until = lambda: submitted(sync, agent_type) >= before + tasks  # noqa: E731
    result = wrk(
        manager, seconds, connections, script, token, agent_type, share, str(pause_ms), until=until
    )
    rows = await timings(redis, await task_ids(redis, agent_type, since)) if wait else []
    await redis.aclose()
    return result, rows


async def queue_level(
    redis_url: str,
    tasks: int,
    concurrency: int,
    replication: Replication = NO_REPLICAS,
    agent_type: str = PLAIN,
) -> tuple[float, list[float]]:
    """Tasks submitted with the queue's client (a standalone or a cluster URL), dispatched by
    the manager to the workers of `agent_type`: tasks/s and submit→finish latencies."""
    redis = connect_url(redis_url)
    ids = await submit_queued(redis, agent_type, tasks, concurrency, replication)
    rows = await timings(redis, ids, poll_s=0.05)
    await redis.aclose()
    return through(rows)


async def forget_sink(redis_url: str) -> None:
    """Drop the sink type's queued count (its tasks are never started) before the next runs."""
    redis = connect_url(redis_url)
    try:
        await redis.delete(k.queued_counter(SINK))
    finally:
        await redis.aclose()


# -- anchors -----------------------------------------------------------------------------------
# arq's settings tried, the best one is the reference: (worker processes, max_jobs, poll s).
# max_jobs 512 matches our default in-flight limit (2 workers × --capacity 256, the most a
# worker takes); a second arq process is what our second worker is. On this machine neither
# more jobs nor a second process made arq faster (its worker is CPU-bound at ~0.5 ms per
# job); the table keeps trying them.
ARQ_SETTINGS = (
    (1, 64, 0.001),
    (1, 100, 0.01),
    (1, 256, 0.01),
    (1, 512, 0.01),
    (2, 128, 0.01),
    (2, 256, 0.01),
)
ArqSetting = tuple[int, int, float]


def arq_label(setting: ArqSetting) -> str:
    processes, max_jobs, poll = setting
    label = f"{processes} process{'es' if processes > 1 else ''}, max_jobs {max_jobs}, "
    return label + f"poll {poll * 1000:g} ms"


def arq_once(
    server: RedisServer, setting: ArqSetting, tasks: int, concurrency: int
) -> tuple[float, list[float]]:
    """arq's no-op rate and enqueue→finish latencies with one setting (workers started,
    warmed up, measured, stopped; its keys dropped)."""
    processes, max_jobs, poll = setting
    script = ARQ_WORKER.replace("poll_delay=0.001", f"poll_delay={poll}")
    arqs = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", script, str(server.port), str(max_jobs)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    try:
        time.sleep(1.0)
        asyncio.run(arq_run(server.port, 300, concurrency))  # warm-up
        asyncio.run(_drop_arq_keys(server.url))  # the job ids are used again
        used = {"redis": server.process.pid}
        used |= {f"arq worker {i}": a.pid for i, a in enumerate(arqs)}
        label = f"arq {arq_label(setting)} (submitter excluded)"
        with cpu_per_task(used, lambda: tasks, label):
            rate, waits = asyncio.run(arq_run(server.port, tasks, concurrency, finish=True))
        asyncio.run(_drop_arq_keys(server.url))
    finally:
        for arq in arqs:
            os.kill(arq.pid, signal.SIGTERM)
            arq.wait(timeout=30)
    return rate, waits


def arq_best(
    server: RedisServer, tasks: int, concurrency: int
) -> tuple[float, list[float], ArqSetting]:
    """arq's no-op rate at each of ARQ_SETTINGS; the best."""
    best: tuple[float, list[float], ArqSetting] = (0.0, [], ARQ_SETTINGS[0])
    for setting in ARQ_SETTINGS:
        rate, waits = arq_once(server, setting, tasks, concurrency)
        print(f"arq ({arq_label(setting)}): {rate:,.0f} jobs/s  [load {load()}]")
        if rate > best[0]:
            best = (rate, waits, setting)
    return best


async def _drop_arq_keys(url: str) -> None:
    redis = Redis.from_url(url)
    keys = [key async for key in redis.scan_iter(match="arq:*", count=5000)]
    for i in range(0, len(keys), 1000):
        await redis.delete(*keys[i : i + 1000])
    await redis.aclose()


def celery_venv() -> Path:
    python = CELERY_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CELERY_VENV)], check=True)  # noqa: S603
        subprocess.run([str(python), "-m", "pip", "install", "-q", CELERY], check=True)  # noqa: S603
    return python


def celery_run(server: RedisServer, tasks: int, directory: Path) -> tuple[float, list[float]]:
    python = celery_venv()
    broker = f"redis://127.0.0.1:{server.port}/1"
    (directory / "bench_celery.py").write_text(f"BROKER = {broker!r}\n" + CELERY_APP)
    (directory / "client.py").write_text(CELERY_CLIENT)
    worker = subprocess.Popen(  # noqa: S603 - the pinned celery of our own venv
        [str(python), "-m", "celery", "-A", "bench_celery", "worker", *CELERY_WORKER.split()],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        out = subprocess.run(  # noqa: S603
            [str(python), "client.py", str(tasks)],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.kill(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    data = json.loads(out)
    waits = [d - s for s, d in zip(data["submitted"], data["done"], strict=True)]
    return tasks / data["elapsed"], waits


def redis_benchmark(port: int, cluster: bool = False) -> dict[str, float]:
    """SET requests/s unpipelined and 16 deep; `cluster`: against the cluster `port` is a node
    of (`--cluster`, every shard)."""
    figures = {}
    for label, extra in (("-P 1", []), ("-P 16", ["-P", "16"])):
        out = subprocess.run(  # noqa: S603 - redis-benchmark from PATH
            [*REDIS_BENCHMARK, str(port), *extra, *(["--cluster"] if cluster else [])],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        figures[f"SET {label}"] = float(re.findall(r"([\d.]+) requests per second", out)[-1])
    return figures


# -- the platform ------------------------------------------------------------------------------
@contextmanager
def platform(server: Backend, root: Path, capacity: int) -> Iterator[dict[str, object]]:
    tokens = Tokens.create(root / "tokens")
    cost_config = {
        "budget": {"dailyUsd": "1000000", "monthlyUsd": "10000000"},
        "rateLimits": {
            "overall": {"requests": 100_000_000, "tokens": 100_000_000_000, "costUsd": "1000000"}
        },
    }
    cost = ServiceProcess(
        "cost-engine",
        {
            "AGENTOPS_REDIS_URL": server.url,
            "AGENTOPS_API_TOKEN_FILE": tokens.file("cost"),
            "AGENTOPS_COST_CONFIG": json.dumps(cost_config),
            "AGENTOPS_LOG_LEVEL": "warning",
        },
        root / "cost.log",
    )
    mgr = ServiceProcess(
        "manager",
        manager_env(
            server.url,
            tokens,
            [GOVERNED, LOCAL, PLAIN, SINK],
            strategy="least_connections",
            max_queued_per_type=10_000_000,
        ),
        root / "manager.log",
    )
    governed: dict[str, dict[str, object]] = {
        GOVERNED: {
            "cost_engine_url": cost.url,
            "cost_token_file": tokens.file("cost"),
            "model": MODEL,
            "work_model": MODEL,
        },
        # The same governance in-process: the cost package's scripts on the queue's Redis.
        LOCAL: {"cost_config": json.dumps(cost_config), "model": MODEL, "work_model": MODEL},
    }
    workers = [
        ServiceProcess(
            "worker",
            worker_env(
                server.url,
                tokens,
                mgr.url,
                kind,
                f"{kind}-{i}",
                capacity=capacity,
                **governed.get(kind, {}),
            ),
            root / f"{kind}-{i}.log",
        )
        for kind in (GOVERNED, LOCAL, PLAIN)
        for i in range(2)
    ]
    started: list[ServiceProcess] = []
    try:
        for service in (cost, mgr, *workers):
            service.start(timeout=180)  # a loaded machine starts eight services slowly
            started.append(service)
        time.sleep(1.5)  # every worker registered and mirrored by the manager
        pids = {s.log.stem: s.process.pid for s in started if s.process is not None}
        yield {"manager": mgr.url, "token": tokens.api, "pids": pids}
    finally:
        for service in reversed(started):
            service.stop(signal.SIGTERM, timeout=30)


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:,.1f}"


def report(figures: list[Figure], arq_settings: str | None) -> None:
    """The table; without arq (on a cluster) the ratio column says so."""
    reference = next((f.rate for f in figures if f.name.startswith("arq")), None)
    print("\n| system | tasks/s | submit→finish p50 ms | p99 ms | vs arq | bounded by |")
    print("|---|---:|---:|---:|---:|---|")
    for f in figures:
        ratio = f"{f.rate / reference:.2f}×" if reference else "no arq on a cluster"
        print(
            f"| {f.name} | {f.rate:,.0f} | {ms(f.latencies, 0.5)} | {ms(f.latencies, 0.99)} "
            f"| {ratio} | {f.bound_by} |"
        )
    if arq_settings:
        print(f"\narq reference settings: {arq_settings}")


def warm_up(redis_url: str, mgr: str, token: str, script: Path, kind: str, c: int) -> None:
    """200 tasks of `kind` through the whole path before a measured run."""
    asyncio.run(
        wrk_tasks(redis_url, mgr, token, script,
                  agent_type=kind, tasks=200, seconds=60, connections=c)
    )  # fmt: skip


def governed_stage(
    args: argparse.Namespace,
    redis_url: str,
    mgr: str,
    token: str,
    script: Path,
    redis: dict[str, int],
    pids: dict[str, int],
    kind: str,
) -> tuple[float, list[float], str]:
    """Warm-up, the governed path at full speed, then at half that rate: its tasks/s,
    submit→finish latencies and what bounded it."""
    c = args.concurrency
    warm_up(redis_url, mgr, token, script, kind, c)
    workers = {n: pids[n] for n in (f"{kind}-0", f"{kind}-1")}
    spied = {n: pids[n] for n in ("manager", "cost", f"{kind}-0")}
    used = {**redis, "manager": pids["manager"], "cost": pids["cost"], **workers}
    done: list[list[float]] = []
    with (
        profiled(spied, args.profile),
        cpu_per_task(used, done.__len__, kind),
        redis_time(redis_url, done.__len__, kind),
    ):
        gov, rows = asyncio.run(
            wrk_tasks(redis_url, mgr, token, script,
                      agent_type=kind, tasks=args.tasks, seconds=300, connections=c)
        )  # fmt: skip
        done += rows
    rate, waits = through(rows)
    print(
        f"{kind} path: {len(rows)} tasks, {rate:,.0f} tasks/s, submit→finish p50 "
        f"{ms(waits, 0.5)} ms p99 {ms(waits, 0.99)} ms (wrk submit {gov.rate:,.0f} "
        f"req/s)  [load {load()}]"
    )
    paced_conn = 16
    pause = round(paced_conn * 1000 / (rate / 2))
    _, steady = asyncio.run(
        wrk_tasks(redis_url, mgr, token, script,
                  agent_type=kind, tasks=0, seconds=args.seconds,
                  connections=paced_conn, pause_ms=pause)
    )  # fmt: skip
    start_waits = [r[1] - r[0] for r in steady]
    fin_waits = [r[2] - r[0] for r in steady]
    print(
        f"{kind} steady load at half capacity ({len(steady) / args.seconds:,.0f} tasks/s "
        f"offered by wrk, {paced_conn} connections, {pause} ms apart): submit→start p50 "
        f"{ms(start_waits, 0.5)} ms p99 {ms(start_waits, 0.99)} ms; submit→finish "
        f"p50 {ms(fin_waits, 0.5)} ms p99 {ms(fin_waits, 0.99)} ms  [load {load()}]"
    )
    return rate, waits, f"the services (wrk submitted {gov.rate:,.0f} req/s)"


@contextmanager
def backend(root: Path, cluster: bool) -> Iterator[Backend]:
    """One redis-server, or a 3-shard cluster (3 primaries + 3 replicas)."""
    if cluster:
        with redis_cluster(root / "cluster") as servers:
            yield servers
    else:
        with redis_server(root / "redis") as server:
            yield server


def anchors(
    args: argparse.Namespace, server: RedisServer, root: Path, figures: list[Figure], celery: bool
) -> ArqSetting:
    """arq (its best setting) and Celery on the same redis-server; arq's best setting."""
    arate, awaits, best = arq_best(server, args.tasks, args.concurrency)
    asettings = arq_label(best)
    figures.append(Figure("arq 0.28 no-op", arate, awaits, "arq's worker; submitter: arq's client"))
    print(f"arq: {arate:,.0f} jobs/s ({asettings})  [load {load()}]")
    if celery:
        crate, cwaits = celery_run(server, args.tasks, root)
        figures.append(
            Figure("Celery 5.5 no-op, prefork -c 2", crate, cwaits, "celery (sync client)")
        )
        print(f"celery: {crate:,.0f} tasks/s  [load {load()}]")
    return best


def rounds(
    args: argparse.Namespace, server: RedisServer, root: Path, best: ArqSetting
) -> list[float]:
    """The in-process governed path and arq (its best setting) in turns, on the same Redis,
    `--rounds` times: the ratio of each round, so the machine's drift meets both alike. Our
    services stay up (idle) while arq runs; the CPU they use meanwhile is printed."""
    script = root / "submit.lua"
    ratios: list[float] = []
    (root / "rounds").mkdir()
    with platform(server, root / "rounds", args.capacity) as p:
        mgr, token = str(p["manager"]), str(p["token"])
        pids = cast(dict[str, int], p["pids"])
        warm_up(server.url, mgr, token, script, LOCAL, args.concurrency)
        for i in range(1, args.rounds + 1):
            _, rows = asyncio.run(
                wrk_tasks(server.url, mgr, token, script, agent_type=LOCAL,
                          tasks=args.tasks, seconds=300, connections=args.concurrency)
            )  # fmt: skip
            ours, _ = through(rows)
            idle = {name: cpu_s(pid) for name, pid in pids.items()}
            theirs, _ = arq_once(server, best, args.tasks, args.concurrency)
            idle_s = sum(cpu_s(pid) - idle[name] for name, pid in pids.items())
            ratios.append(ours / theirs)
            print(
                f"round {i}: governed (in-process cost) {ours:,.0f} tasks/s, arq {theirs:,.0f} "
                f"jobs/s = {ours / theirs:.2f}× (our idle services meanwhile: "
                f"{idle_s * 1000:.0f} ms CPU)  [load {load()}]"
            )
    return ratios


def wrk_floors(
    args: argparse.Namespace, redis_url: str, mgr: str, token: str, script: Path, manager: int
) -> tuple[WrkResult, WrkResult]:
    """wrk's GET /health (the machine's floor) and POST /api/v1/tasks for a type no worker
    serves (the submit alone)."""
    c = args.concurrency
    done: list[WrkResult] = []
    with cpu_per_task({"manager": manager}, lambda: done[-1].requests, "wrk GET /health"):
        done.append(floor := wrk(mgr + "/health", args.seconds, c, None))
    print(
        f"\nwrk GET /health (2 threads, {c} connections): {floor.rate:,.0f} req/s, "
        f"p50 {floor.p50_ms:.1f} ms, p99 {floor.p99_ms:.1f} ms  [load {load()}]"
    )
    with (
        profiled({"manager (POST /api/v1/tasks)": manager}, args.profile),
        cpu_per_task({"manager": manager}, lambda: done[-1].requests, "wrk POST /api/v1/tasks"),
    ):
        sink, _ = asyncio.run(
            wrk_tasks(
                redis_url, mgr, token, script, agent_type=SINK, tasks=0,
                seconds=args.seconds, connections=c, wait=False,
            )
        )  # fmt: skip
        done.append(sink)
    print(
        f"wrk POST /api/v1/tasks (no worker for the type): {sink.rate:,.0f} req/s, "
        f"p50 {sink.p50_ms:.1f} ms, p99 {sink.p99_ms:.1f} ms, non-2xx {sink.errors}, "
        f"{sink.rate / floor.rate:.0%} of the /health floor  [load {load()}]"
    )
    asyncio.run(forget_sink(redis_url))
    return floor, sink


def queue_stage(
    args: argparse.Namespace, redis_url: str, redis: dict[str, int], pids: dict[str, int]
) -> Figure:
    """Our queue level: tasks submitted with the queue's client, run by the plain workers."""
    asyncio.run(queue_level(redis_url, 300, args.concurrency))  # warm-up
    used = {**redis, "manager": pids["manager"]}
    used |= {n: pids[n] for n in pids if n.startswith(PLAIN)}
    spied = {f"{n} (queue level)": pids[n] for n in ("manager", f"{PLAIN}-0")}
    with (
        profiled(spied, args.profile),
        cpu_per_task(used, lambda: args.tasks, "queue level (submitter excluded)"),
        redis_time(redis_url, lambda: args.tasks, "queue level (submits included)"),
    ):
        rate, waits = asyncio.run(queue_level(redis_url, args.tasks, args.concurrency))
    print(f"queue level: {rate:,.0f} tasks/s  [load {load()}]")
    return Figure(
        "ours, queue level (2 workers)",
        rate,
        waits,
        "manager + workers; submitter: the queue's Python client, as arq's",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=10, help="each wrk rate measurement")
    parser.add_argument(
        "--capacity",
        type=int,
        default=256,
        help="tasks per worker at once (2 workers: 512 in flight, arq's largest max_jobs tried)",
    )
    parser.add_argument("--concurrency", type=int, default=64, help="connections/submitters")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="then the in-process governed path and arq's best in turns, this many times",
    )
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated subset of {','.join(STAGES)} (arq always runs: the reference)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="a 3-shard Redis Cluster (3 primaries + 3 replicas) instead of one redis-server",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the services during the governed run into this dir"
    )
    args = parser.parse_args()
    os.environ.setdefault("AGENTOPS_LOG_LEVEL", "warning")
    stages = set(args.stages.split(","))
    if unknown := stages - set(STAGES):
        parser.error(f"--stages: unknown {sorted(unknown)}; allowed: {', '.join(STAGES)}")
    if args.skip_celery:
        stages.discard("celery")
    print(f"load average at start: {load()}  ({os.cpu_count()} cores)")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp, backend(Path(tmp), args.cluster) as server:
        root = Path(tmp)
        script = root / "submit.lua"
        script.write_text(WRK_SUBMIT)
        print(f"Redis: {server.url}")
        redis = redis_pids(server)
        with platform(server, root, args.capacity) as p:
            mgr, token = str(p["manager"]), str(p["token"])
            print(f"service pids (cost engine, manager, workers): {p['pids']}")
            pids = p["pids"]
            assert isinstance(pids, dict)
            if "wrk" in stages:
                floor, sink = wrk_floors(args, server.url, mgr, token, script, pids["manager"])
            for kind, label in ((GOVERNED, "cost engine API"), (LOCAL, "in-process cost")):
                if kind not in stages:
                    continue
                found = governed_stage(args, server.url, mgr, token, script, redis, pids, kind)
                figures.append(
                    Figure(f"ours, governed path ({label}, HTTP submit, 2 workers)", *found)
                )
            if "queue" in stages:
                figures.append(queue_stage(args, server.url, redis, pids))
        asettings, ratios = None, []
        if isinstance(server, RedisServer):  # arq and Celery have no cluster support
            best = anchors(args, server, root, figures, "celery" in stages)
            asettings = arq_label(best)
            if args.rounds:
                ratios = rounds(args, server, root, best)
        port = server.port if isinstance(server, RedisServer) else server.nodes[0].port
        bench = redis_benchmark(port, cluster=args.cluster)
        print(
            "redis-benchmark (50 clients): "
            + ", ".join(f"{n} {v:,.0f}/s" for n, v in bench.items())
            + f"  [load {load()}]"
        )
    report(figures, asettings)
    if ratios:
        print(
            f"\ngoverned (in-process cost) vs arq over {len(ratios)} rounds in turns: "
            + ", ".join(f"{r:.2f}×" for r in ratios)
            + f"; median {statistics.median(ratios):.2f}×"
        )
    if "wrk" in stages:
        print(
            f"\nfloors: wrk GET /health {floor.rate:,.0f} req/s; wrk POST /api/v1/tasks "
            f"{sink.rate:,.0f} req/s (target 2,500); load average at end {load()}"
        )


if __name__ == "__main__":
    main()
