"""The local platform (`agentops dev`) for end-to-end tests: real processes from a stack file,
a client for its APIs, Prometheus queries, and polling helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from infra.plan.stackfile import load_stack_config
from ops.devstack.control import free_ports, read_state, start, stop
from ops.devstack.layout import REDIS_URL, DevOptions, plan, process_names
from tests import waiting
from tests.stacks import write_stack

__all__ = ["LocalPlatform", "eventually", "local_platform"]

T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 90) -> T:
    """`tests.waiting.eventually`, where an API not answering yet (or answering without the
    field) counts as "not yet"."""
    return waiting.eventually(
        what, probe, timeout, ignoring=(httpx.HTTPError, KeyError, IndexError, ValueError)
    )


@dataclass
class LocalPlatform:
    state: Path
    record: dict[str, Any]
    # The Redis every runtime service uses: the devstack's own redis-server unless the test
    # gave another (a standalone server or a cluster of `tests.redis_backends`).
    redis_url: str

    def url(self, name: str) -> str:
        port = next(p["port"] for p in self.record["processes"] if p["name"] == name)
        return f"http://127.0.0.1:{port}"

    def pid(self, name: str) -> int:
        return int(next(p["pid"] for p in self.record["processes"] if p["name"] == name))

    def token(self, audience: str) -> str:
        return Path(self.record["tokens"][audience]).read_text().strip()

    def auth(self, audience: str = "api") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(audience)}"}

    def submit(self, **body: Any) -> httpx.Response:
        body = {"agent_type": "code-generator", "payload": {"prompt": "hello"}} | body
        return httpx.post(f"{self.url('manager')}/api/v1/tasks", json=body, headers=self.auth())

    def task(self, task_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url('manager')}/api/v1/tasks/{task_id}", headers=self.auth(), timeout=10
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def finished(self, ids: list[str]) -> list[dict[str, Any]] | None:
        records = [self.task(i) for i in ids]
        done = all(r["status"] in ("succeeded", "failed", "dead_lettered") for r in records)
        return records if done else None

    def promql(self, query: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.url('prometheus')}/api/v1/query", params={"query": query}, timeout=10
        )
        response.raise_for_status()
        return response.json()["data"]["result"]  # type: ignore[no-any-return]

    def scalar(self, query: str) -> float | None:
        result = self.promql(query)
        return float(result[0]["value"][1]) if result else None

    def cost(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.url('cost-engine')}/api/v1{path}", params=params, headers=self.auth("cost")
        )
        response.raise_for_status()
        return response.json()

    def ready(self) -> dict[str, Any]:
        return httpx.get(f"{self.url('manager')}/ready", timeout=5).json()  # type: ignore[no-any-return]


def e2e_stack(
    directory: Path,
    cost: dict[str, Any] | None = None,
    change: Callable[[dict[str, Any]], None] | None = None,
    pools: Sequence[dict[str, Any]] = (),
) -> Path:
    """The local stack file with room for a test's load: limits no test should trip, any
    cost settings a test needs, and any other `change` of the stack's config."""

    def mutate(config: dict[str, Any]) -> None:
        config["agentops:cost"]["rateLimits"] = {
            "overall": {"requests": 100000, "tokens": 100000000, "costUsd": "1000"}
        }
        config["agentops:cost"].update(cost or {})
        config["agentops:agents"]["pools"] += list(pools)
        if change is not None:
            change(config)

    return write_stack(directory, "local", mutate)


@contextmanager
def local_platform(
    directory: Path,
    *,
    workers: int = 2,
    cost: dict[str, Any] | None = None,
    manager_env: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    stack: Callable[[dict[str, Any]], None] | None = None,
    pools: Sequence[dict[str, Any]] = (),
    pool_env: dict[str, dict[str, str]] | None = None,
    redis_url: str | None = None,
    **worker_env: str,
) -> Iterator[LocalPlatform]:
    """`redis_url`: run the services and workers on this Redis (e.g. `redis+cluster://…`)
    instead of the devstack's redis-server, which then starts but holds nothing."""
    cfg = load_stack_config(e2e_stack(directory / "stack", cost, stack, pools), "local")
    options = DevOptions(
        workers_per_pool=workers,
        worker_env={"AGENTOPS_HEARTBEAT_INTERVAL_S": "0.5", **worker_env},
    )
    state = directory / "state"
    dev = plan(cfg, state, free_ports(process_names(cfg, options)), sys.executable, options)
    # Crash recovery within a test, not minutes: the manager's clocks, shortened.
    manager = dev.process("manager")
    manager.env.update(
        {
            "AGENTOPS_HEARTBEAT_TTL_S": "2",
            "AGENTOPS_VISIBILITY_TIMEOUT_S": "3",
            "AGENTOPS_MAINTENANCE_INTERVAL_S": "0.2",
            "AGENTOPS_REGISTRY_SYNC_S": "0.2",
            "AGENTOPS_RETRY_BACKOFF_S": "0.1",
            **(manager_env or {}),
        }
    )
    # `env`: settings every runtime service gets (cost engine, manager, workers).
    services_env = (env or {}) | ({REDIS_URL: redis_url} if redis_url else {})
    for process in dev.processes:
        if process.role in ("service", "worker"):
            process.env.update(services_env)
    # `pool_env`: settings of one pool's workers (agent type → variables).
    for agent_type, variables in (pool_env or {}).items():
        for process in dev.processes:
            if process.role == "worker" and process.env["AGENTOPS_AGENT_TYPE"] == agent_type:
                process.env.update(variables)
    start(state, dev)
    try:
        record = read_state(state)
        assert record is not None
        yield LocalPlatform(state, record, redis_url or dev.process("manager").env[REDIS_URL])
    finally:
        stop(state)


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
