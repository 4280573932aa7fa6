"""The services run without the infrastructure's libraries: each one, started as the image
starts it and served real requests, never loaded Pulumi, gRPC, the Kubernetes client or
matplotlib (which the lean image does not even install: docs/architecture.md, "Layers")."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from contracts import endpoints
from contracts.config import load_from_mapping
from tests.runtime.processes import ServiceProcess, Tokens, manager_env, running, worker_env
from tests.servers import redis_server
from tests.stacks import stack_values
from tests.waiting import eventually

POOL = "code-generator"
HEAVY = ("pulumi", "grpc", "matplotlib", "kubernetes")
LAUNCHER = ("-m", "tests.runtime.loaded_modules")


def _loaded(tmp_path: Path, service: ServiceProcess) -> set[str]:
    return set((tmp_path / f"{service.service}.modules").read_text().split())


def _dumping(tmp_path: Path, service: str, env: dict[str, str]) -> ServiceProcess:
    env = env | {"LOADED_MODULES_FILE": str(tmp_path / f"{service}.modules")}
    return ServiceProcess(service, env, tmp_path / f"{service}.log", launcher=LAUNCHER)


def test_services_serve_without_pulumi_grpc_kubernetes_or_matplotlib(tmp_path: Path) -> None:
    cfg = load_from_mapping(stack_values("local"))
    tokens = Tokens.create(tmp_path / "tokens")
    with redis_server(tmp_path / "redis") as server:
        cost = _dumping(
            tmp_path,
            "cost-engine",
            {
                "AGENTOPS_REDIS_URL": server.url,
                "AGENTOPS_API_TOKEN_FILE": tokens.file("cost"),
                "AGENTOPS_COST_CONFIG": cfg.cost.model_dump_json(by_alias=True),
            },
        )
        manager = _dumping(tmp_path, "manager", manager_env(server.url, tokens, [POOL]))
        worker_settings = worker_env(
            server.url,
            tokens,
            manager.url,
            POOL,
            f"{POOL}-1",
            cost_engine_url=cost.url,
            cost_token_file=tokens.file("cost"),
        )
        worker = _dumping(tmp_path, "worker", worker_settings)
        services = (cost, manager, worker)
        with running(*services):
            answer = httpx.post(
                manager.url + endpoints.TASKS_API,
                json={"agent_type": POOL, "payload": {"prompt": "hello"}},
                headers=tokens.header("api"),
                timeout=10,
            )
            assert answer.status_code == 202, answer.text
            task = f"{manager.url}{endpoints.TASKS_API}/{answer.json()['task_id']}"
            eventually(
                "the task done by the worker through the cost engine",
                lambda: (
                    httpx.get(task, headers=tokens.header("api")).json()["status"] == "succeeded"
                ),
                timeout=30,
            )
            for service in services:
                service.send(signal.SIGUSR1)
                dump = tmp_path / f"{service.service}.modules"
                eventually(f"{service.service} lists its modules", dump.exists, timeout=10)
    for service in services:
        loaded = _loaded(tmp_path, service)
        assert "runtime.service.serve" in loaded, service.service  # the dump is a real one
        heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
        assert heavy == [], f"{service.service} loaded {heavy}"
