"""The local stack's runtime as real processes for the doctor: redis-server, the cost engine,
the manager and one worker of the stack's pool, each `agentops serve ...` on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from contracts import endpoints
from contracts.config import PlatformConfig
from tests.runtime.processes import ServiceProcess, Tokens, manager_env, running, worker_env
from tests.servers import RedisServer, redis_server

__all__ = ["LocalRuntime", "local_runtime"]

# Short clocks so a stopped worker is noticed within a test.
FAST = {"heartbeat_ttl_s": 1.5, "maintenance_interval_s": 0.2, "registry_sync_s": 0.2}


@dataclass
class LocalRuntime:
    cfg: PlatformConfig
    redis: RedisServer
    tokens: Tokens
    cost: ServiceProcess
    manager: ServiceProcess
    worker: ServiceProcess

    @property
    def pool(self) -> str:
        return self.cfg.agents.pools[0].name

    def scrape(self) -> dict[str, list[str]]:
        """Prometheus jobs named as prometheus-operator names them: after the Services."""
        from infra.platform.names import COST_ENGINE, MANAGER, pool_workload

        return {
            MANAGER: [f"127.0.0.1:{self.manager.port}"],
            COST_ENGINE: [f"127.0.0.1:{self.cost.port}"],
            pool_workload(self.pool): [f"127.0.0.1:{self.worker.port}"],
        }

    def submit(self, payload: dict[str, Any]) -> str:
        answer = httpx.post(
            f"{self.manager.url}{endpoints.TASKS_API}",
            json={"agent_type": self.pool, "payload": payload},
            headers=self.tokens.header("api"),
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["task_id"])

    def record_usage(self, task_id: str, model: str, input_tokens: int) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.cost.url}{endpoints.COST_API}/usage",
            json={
                "task_id": task_id,
                "attempt": 1,
                "model": model,
                "agent_type": self.pool,
                "team": "default",
                "input_tokens": input_tokens,
                "output_tokens": 0,
            },
            headers=self.tokens.header("cost"),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@contextmanager
def local_runtime(directory: Path, cfg: PlatformConfig) -> Iterator[LocalRuntime]:
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server(directory / "redis"))
        tokens = Tokens.create(directory / "tokens")
        pool = cfg.agents.pools[0].name
        cost = ServiceProcess(
            "cost-engine",
            {
                "AGENTOPS_REDIS_URL": redis.url,
                "AGENTOPS_API_TOKEN_FILE": tokens.file("cost"),
                "AGENTOPS_COST_CONFIG": cfg.cost.model_dump_json(by_alias=True),
                "AGENTOPS_METRICS_REFRESH_SECONDS": "0.5",
                "AGENTOPS_LOG_LEVEL": "warning",
            },
            directory / "cost-engine.log",
        )
        manager = ServiceProcess(
            "manager",
            manager_env(redis.url, tokens, [pool], instance_id="manager-0", **FAST),
            directory / "manager.log",
        )
        worker = ServiceProcess(
            "worker",
            worker_env(
                redis.url,
                tokens,
                manager.url,
                pool,
                f"{pool}-1",
                heartbeat_interval_s=0.3,
                retry_backoff_s=0.1,
                retry_backoff_max_s=0.2,
            ),
            directory / "worker.log",
        )
        stack.enter_context(running(cost, manager, worker))
        yield LocalRuntime(cfg, redis, tokens, cost, manager, worker)
