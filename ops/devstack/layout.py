"""What `agentops dev up` runs, derived from a stack's config: pure, no processes started.

The services get the environment the Pulumi program gives their Deployments
(`runtime_workloads`), with only what differs on one machine replaced: loopback URLs and ports,
token files in the state directory, no Vault. Prometheus loads the same alert catalogue and
Alertmanager the same routes the program renders, with timings short enough for a demo.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from contracts import endpoints
from contracts.config import PlatformConfig
from contracts.settings.environment import env_name, env_names
from contracts.settings.manager import ManagerSettings
from contracts.settings.service import ServiceSettings
from contracts.settings.vault import VaultSettings
from contracts.settings.worker import WorkerSettings
from contracts.telemetry.alerts import build_catalogue, render_rule_groups
from infra.platform.alert_thresholds import alert_thresholds
from infra.platform.alertmanager import LocalDelivery, alertmanager_config
from infra.platform.workloads import Track, runtime_workloads

__all__ = ["DevOptions", "DevPlan", "ProcessSpec", "Timing", "plan", "process_names"]

LOCALHOST = "127.0.0.1"
# Kubernetes-only settings: the pod's Vault login, which no local process has, and the in-cluster
# collector's address (a local run exports spans only where its own environment says).
_CLUSTER_ONLY = frozenset(
    [
        *(name for field in VaultSettings.model_fields for name in env_names(VaultSettings, field)),
        env_name(ServiceSettings, "trace_exporter"),
        env_name(ServiceSettings, "otlp_endpoint"),
    ]
)
# The variables `plan` sets itself, each named by the settings model that reads it.
HOST = env_name(ServiceSettings, "host")
PORT = env_name(ServiceSettings, "port")
REDIS_URL = env_name(ServiceSettings, "redis_url")
REDIS_MIN_REPLICAS = env_name(ServiceSettings, "redis_min_replicas")
MANAGER_URL = env_name(WorkerSettings, "manager_url")
COST_ENGINE_URL = env_name(WorkerSettings, "cost_engine_url")
API_TOKEN_FILE = env_name(ManagerSettings, "api_token_file")
AGENT_TOKEN_FILE = env_name(ManagerSettings, "agent_token_file")
WEBHOOK_TOKEN_FILE = env_name(ManagerSettings, "webhook_token_file")
COST_TOKEN_FILE = env_name(WorkerSettings, "cost_token_file")
INSTANCE_ID = env_name(ManagerSettings, "instance_id")
AGENT_ID = env_name(WorkerSettings, "agent_id")
AGENT_TYPE = env_name(WorkerSettings, "agent_type")


@dataclass(frozen=True)
class Timing:
    """How fast the local monitoring loop reacts (production: 15 s scrapes, 5 m windows)."""

    scrape_interval: str = "1s"
    success_window: str = "30s"
    pending: str = "5s"


@dataclass(frozen=True)
class DevOptions:
    workers_per_pool: int | None = None  # None: each pool's minReplicas
    worker_env: dict[str, str] = field(default_factory=dict)  # e.g. the work handler's knobs
    timing: Timing = field(default_factory=Timing)


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str | None = endpoints.READY
    role: str = "service"  # service | worker | dependency

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"


@dataclass(frozen=True)
class DevPlan:
    processes: list[ProcessSpec]
    files: dict[str, str]  # path relative to the state directory → content

    def process(self, name: str) -> ProcessSpec:
        return next(p for p in self.processes if p.name == name)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} is not installed: run scripts/ensure-apt (Debian packages redis-server, "
            "prometheus, prometheus-alertmanager)"
        )
    return found


def plan(
    cfg: PlatformConfig,
    state: Path,
    ports: dict[str, int],
    python: str,
    options: DevOptions | None = None,
) -> DevPlan:
    """Every process and config file; `ports` maps process names to free ports (see
    `process_names`)."""
    options = options or DevOptions()
    secrets = state / "secrets"
    redis_url = f"redis://{LOCALHOST}:{ports['redis']}/0"
    manager_url = f"http://{LOCALHOST}:{ports['manager']}"
    cost_url = f"http://{LOCALHOST}:{ports['cost-engine']}"
    local = {
        HOST: LOCALHOST,
        REDIS_URL: redis_url,
        # One redis-server without a replica: nothing to wait for.
        REDIS_MIN_REPLICAS: "0",
        MANAGER_URL: manager_url,
        COST_ENGINE_URL: cost_url,
        API_TOKEN_FILE: str(secrets / "api.token"),
        AGENT_TOKEN_FILE: str(secrets / "agent.token"),
        WEBHOOK_TOKEN_FILE: str(secrets / "webhook.token"),
        COST_TOKEN_FILE: str(secrets / "cost.token"),
    }

    def service_env(env: dict[str, str], port: int, extra: dict[str, str]) -> dict[str, str]:
        kept = {k: v for k, v in env.items() if k not in _CLUSTER_ONLY and not k.endswith("_FILE")}
        return {**kept, **local, PORT: str(port), **extra}

    serve = [python, "-m", "runtime", "serve"]
    processes = [
        ProcessSpec(
            "redis",
            [
                _binary("redis-server"),
                "--bind",
                LOCALHOST,
                "--port",
                str(ports["redis"]),
                "--dir",
                str(state / "redis"),
                "--appendonly",
                "yes",
                "--appendfsync",
                cfg.redis.appendfsync.value,
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            ports["redis"],
            ready_path=None,
            role="dependency",
        )
    ]
    workers: list[ProcessSpec] = []
    for w in runtime_workloads(cfg):
        if w.component == "cost-engine":
            # The engine's own audience: the cost token the workers and manager present.
            env = service_env(w.env, ports["cost-engine"], {})
            env[API_TOKEN_FILE] = local[COST_TOKEN_FILE]
            processes.append(
                ProcessSpec("cost-engine", [*serve, "cost-engine"], ports["cost-engine"], env)
            )
        elif w.component == "manager" and w.track in (None, Track.BLUE):
            env = service_env(w.env, ports["manager"], {INSTANCE_ID: "manager-0"})
            processes.append(ProcessSpec("manager", [*serve, "manager"], ports["manager"], env))
        elif w.component == "agent-worker":
            agent_type = w.env[AGENT_TYPE]
            count = options.workers_per_pool or (w.autoscaling.min_replicas if w.autoscaling else 1)
            for i in range(count):
                name = f"worker-{agent_type}-{i}"
                env = service_env(w.env, ports[name], {AGENT_ID: name, **options.worker_env})
                workers.append(
                    ProcessSpec(name, [*serve, "worker"], ports[name], env, role="worker")
                )
    processes += workers
    scrape = _scrape_config(
        {
            "agent-manager": [p.port for p in processes if p.name == "manager"],
            "cost-engine": [p.port for p in processes if p.name == "cost-engine"],
            "agent-worker": [p.port for p in workers],
        },
        options.timing,
        ports["alertmanager"],
    )
    thresholds = replace(
        alert_thresholds(cfg),
        success_window=options.timing.success_window,
        pending_override=options.timing.pending,
    )
    rules = render_rule_groups(build_catalogue(thresholds))
    routes = alertmanager_config(
        cfg,
        {},
        LocalDelivery(manager_url=manager_url, webhook_token_file=local[WEBHOOK_TOKEN_FILE]),
    )
    processes += [
        ProcessSpec(
            "prometheus",
            [
                _binary("prometheus"),
                f"--config.file={state / 'prometheus.yml'}",
                f"--storage.tsdb.path={state / 'prometheus-data'}",
                f"--web.listen-address={LOCALHOST}:{ports['prometheus']}",
                "--storage.tsdb.retention.time=1d",
            ],
            ports["prometheus"],
            ready_path="/-/ready",
            role="dependency",
        ),
        ProcessSpec(
            "alertmanager",
            [
                _binary("prometheus-alertmanager"),
                f"--config.file={state / 'alertmanager.yml'}",
                f"--storage.path={state / 'alertmanager-data'}",
                f"--web.listen-address={LOCALHOST}:{ports['alertmanager']}",
                "--cluster.listen-address=",
            ],
            ports["alertmanager"],
            ready_path="/-/ready",
            role="dependency",
        ),
    ]
    files = {
        "prometheus.yml": yaml.safe_dump(scrape, sort_keys=False),
        "rules.yml": yaml.safe_dump(rules, sort_keys=False),
        "alertmanager.yml": yaml.safe_dump(routes, sort_keys=False),
        "stack-cost.json": json.dumps(json.loads(cfg.cost.model_dump_json(by_alias=True))),
    }
    return DevPlan(processes, files)


def process_names(cfg: PlatformConfig, options: DevOptions | None = None) -> list[str]:
    """The names `plan` needs a port for."""
    options = options or DevOptions()
    names = ["redis", "cost-engine", "manager", "prometheus", "alertmanager"]
    for w in runtime_workloads(cfg):
        if w.component == "agent-worker":
            count = options.workers_per_pool or (w.autoscaling.min_replicas if w.autoscaling else 1)
            names += [f"worker-{w.env[AGENT_TYPE]}-{i}" for i in range(count)]
    return names


def _scrape_config(jobs: dict[str, list[int]], timing: Timing, alertmanager: int) -> dict[str, Any]:
    return {
        "global": {
            "scrape_interval": timing.scrape_interval,
            "evaluation_interval": timing.scrape_interval,
        },
        "rule_files": ["rules.yml"],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"{LOCALHOST}:{alertmanager}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": endpoints.METRICS,
                "static_configs": [{"targets": [f"{LOCALHOST}:{port}" for port in ports]}],
            }
            for job, ports in jobs.items()
            if ports
        ],
    }
