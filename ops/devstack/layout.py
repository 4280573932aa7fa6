"""What `agentops dev up` runs, derived from a stack's config: pure, no processes started.

The services get the environment the Pulumi program gives their Deployments
(`runtime_workloads`), with only what differs on one machine replaced: loopback URLs and ports,
token files in the state directory, no Vault. Prometheus loads the same alert catalogue and
Alertmanager the same routes the program renders, with timings short enough for a demo. With a
database, PostgreSQL runs beside Redis and each listed pool's workers get a fixed login of their
own in place of the Vault path (ops/devstack/database.py).
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
from infra.platform.workloads import Track, Workload, runtime_workloads
from ops.devstack import database
from ops.devstack.database import DatabaseSetup

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
# A pool's database: the cluster's Vault path replaced by the devstack's fixed login.
DATABASE_ENV = {
    field: env_name(WorkerSettings, field)
    for field in (
        "database_host",
        "database_port",
        "database_ssl",
        "database_credentials_path",
        "database_user",
        "database_password_file",
    )
}


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
    ready_argv: list[str] | None = None  # readiness by a command's exit code (PostgreSQL)
    user: str | None = None  # the system user it runs as when the devstack runs as root
    cwd: str | None = None  # None: the state directory

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"


@dataclass(frozen=True)
class DevPlan:
    processes: list[ProcessSpec]
    files: dict[str, str]  # path relative to the state directory → content
    database: DatabaseSetup | None = None  # initialised before, logins created after its start

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


@dataclass(frozen=True)
class _Local:
    """One machine's stand-ins for what the cluster provides: loopback URLs, the state
    directory's token files, the ports `process_names` asked for."""

    cfg: PlatformConfig
    state: Path
    ports: dict[str, int]
    python: str
    options: DevOptions

    def url(self, name: str) -> str:
        return f"http://{LOCALHOST}:{self.ports[name]}"

    @property
    def env(self) -> dict[str, str]:
        secrets = self.state / "secrets"
        return {
            HOST: LOCALHOST,
            REDIS_URL: f"redis://{LOCALHOST}:{self.ports['redis']}/0",
            # One redis-server without a replica: nothing to wait for.
            REDIS_MIN_REPLICAS: "0",
            MANAGER_URL: self.url("manager"),
            COST_ENGINE_URL: self.url("cost-engine"),
            API_TOKEN_FILE: str(secrets / "api.token"),
            AGENT_TOKEN_FILE: str(secrets / "agent.token"),
            WEBHOOK_TOKEN_FILE: str(secrets / "webhook.token"),
            COST_TOKEN_FILE: str(secrets / "cost.token"),
        }

    def service(
        self, name: str, command: str, workload_env: dict[str, str], extra: dict[str, str]
    ) -> ProcessSpec:
        """`python -m runtime serve <command>` with the Deployment's environment, made local."""
        kept = {
            k: v
            for k, v in workload_env.items()
            if k not in _CLUSTER_ONLY and not k.endswith("_FILE")
        }
        env = {**kept, **self.env, PORT: str(self.ports[name]), **extra}
        argv = [self.python, "-m", "runtime", "serve", command]
        role = "worker" if command == "worker" else "service"
        return ProcessSpec(name, argv, self.ports[name], env, role=role)

    def services(self) -> tuple[list[ProcessSpec], list[ProcessSpec]]:
        """The cost engine and (blue) manager, then the workers of every pool."""
        services: list[ProcessSpec] = []
        workers: list[ProcessSpec] = []
        for w in runtime_workloads(self.cfg):
            if w.component == "cost-engine":
                # The engine's own audience: the cost token the workers and manager present.
                extra = {API_TOKEN_FILE: self.env[COST_TOKEN_FILE]}
                services.append(self.service("cost-engine", "cost-engine", w.env, extra))
            elif w.component == "manager" and w.track in (None, Track.BLUE):
                extra = {INSTANCE_ID: "manager-0"}
                services.append(self.service("manager", "manager", w.env, extra))
            elif w.component == "agent-worker":
                env, db_env = self.database_env(w)
                for name in _worker_names(w, self.options):
                    extra = {AGENT_ID: name, **db_env, **self.options.worker_env}
                    workers.append(self.service(name, "worker", env, extra))
        return services, workers

    @property
    def database(self) -> DatabaseSetup | None:
        return database.setup(self.cfg, self.state, self.ports.get("postgres", 0))

    def database_env(self, w: Workload) -> tuple[dict[str, str], dict[str, str]]:
        """A pool's Deployment env without the Vault path, and its local server and login."""
        db = self.database
        login = db.logins.get(w.env[AGENT_TYPE]) if db is not None else None
        if db is None or login is None:
            return w.env, {}
        env = {k: v for k, v in w.env.items() if k != DATABASE_ENV["database_credentials_path"]}
        user, password_file = login
        return env, {
            DATABASE_ENV["database_host"]: LOCALHOST,
            DATABASE_ENV["database_port"]: str(db.port),
            DATABASE_ENV["database_ssl"]: "false",
            DATABASE_ENV["database_user"]: user,
            DATABASE_ENV["database_password_file"]: password_file,
        }

    def postgres(self) -> list[ProcessSpec]:
        db = self.database
        if db is None:
            return []
        return [
            ProcessSpec(
                "postgres",
                db.argv(),
                db.port,
                ready_path=None,
                role="dependency",
                ready_argv=db.ready_argv(),
                user=database.SERVER_USER,
                cwd=db.directory,
            )
        ]

    def redis(self) -> ProcessSpec:
        port = self.ports["redis"]
        argv = [
            _binary("redis-server"),
            *("--bind", LOCALHOST, "--port", str(port), "--dir", str(self.state / "redis")),
            *("--appendonly", "yes", "--appendfsync", self.cfg.redis.appendfsync.value),
            *("--save", "", "--protected-mode", "yes"),
        ]
        return ProcessSpec("redis", argv, port, ready_path=None, role="dependency")

    def monitoring(self) -> list[ProcessSpec]:
        """Prometheus and Alertmanager, each reading its file from the state directory."""
        prometheus, alertmanager = self.ports["prometheus"], self.ports["alertmanager"]
        return [
            _dependency(
                "prometheus",
                prometheus,
                _binary("prometheus"),
                f"--config.file={self.state / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.state / 'prometheus-data'}",
                f"--web.listen-address={LOCALHOST}:{prometheus}",
                "--storage.tsdb.retention.time=1d",
            ),
            _dependency(
                "alertmanager",
                alertmanager,
                _binary("prometheus-alertmanager"),
                f"--config.file={self.state / 'alertmanager.yml'}",
                f"--storage.path={self.state / 'alertmanager-data'}",
                f"--web.listen-address={LOCALHOST}:{alertmanager}",
                "--cluster.listen-address=",
            ),
        ]

    def files(self, processes: list[ProcessSpec]) -> dict[str, str]:
        """Prometheus' scrape config and rules, Alertmanager's routes, the stack's cost JSON."""
        timing = self.options.timing
        jobs = {
            "agent-manager": [p.port for p in processes if p.name == "manager"],
            "cost-engine": [p.port for p in processes if p.name == "cost-engine"],
            "agent-worker": [p.port for p in processes if p.role == "worker"],
        }
        scrape = _scrape_config(jobs, timing, self.ports["alertmanager"])
        thresholds = replace(
            alert_thresholds(self.cfg),
            success_window=timing.success_window,
            pending_override=timing.pending,
        )
        rules = render_rule_groups(build_catalogue(thresholds))
        delivery = LocalDelivery(
            manager_url=self.url("manager"), webhook_token_file=self.env[WEBHOOK_TOKEN_FILE]
        )
        routes = alertmanager_config(self.cfg, {}, delivery)
        return {
            "prometheus.yml": yaml.safe_dump(scrape, sort_keys=False),
            "rules.yml": yaml.safe_dump(rules, sort_keys=False),
            "alertmanager.yml": yaml.safe_dump(routes, sort_keys=False),
            "stack-cost.json": json.dumps(json.loads(self.cfg.cost.model_dump_json(by_alias=True))),
        }


def _dependency(name: str, port: int, *argv: str) -> ProcessSpec:
    return ProcessSpec(name, list(argv), port, ready_path="/-/ready", role="dependency")


def _worker_names(workload: Workload, options: DevOptions) -> list[str]:
    """`worker-<type>-<i>` for each local worker of a pool: its minReplicas unless overridden."""
    autoscaling = workload.autoscaling
    count = options.workers_per_pool or (autoscaling.min_replicas if autoscaling else 1)
    return [f"worker-{workload.env[AGENT_TYPE]}-{i}" for i in range(count)]


def plan(
    cfg: PlatformConfig,
    state: Path,
    ports: dict[str, int],
    python: str,
    options: DevOptions | None = None,
) -> DevPlan:
    """Every process and config file; `ports` maps process names to free ports (see
    `process_names`)."""
    local = _Local(cfg, state, ports, python, options or DevOptions())
    services, workers = local.services()
    processes = [local.redis(), *local.postgres(), *services, *workers, *local.monitoring()]
    return DevPlan(processes, local.files(processes), local.database)


def process_names(cfg: PlatformConfig, options: DevOptions | None = None) -> list[str]:
    """The names `plan` needs a port for."""
    options = options or DevOptions()
    names = ["redis", "cost-engine", "manager", "prometheus", "alertmanager"]
    if cfg.database_pools():
        names.append("postgres")
    for w in runtime_workloads(cfg):
        if w.component == "agent-worker":
            names += _worker_names(w, options)
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
