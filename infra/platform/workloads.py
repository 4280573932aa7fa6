"""The runtime workloads the platform deploys, described as data from the config.

Each workload names the settings model its container reads (`runtime/*/settings.py`) and
builds its environment from that model's fields (`settings_env`): the Deployment sets exactly
variables the service reads, and every field the model requires. Secrets are files the Vault
Agent Injector renders (`secret_files`), never environment values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from pydantic_settings import BaseSettings

from contracts import ports
from contracts.config import (
    AgentPoolConfig,
    Environment,
    ImageConfig,
    PlatformConfig,
    ResourcesConfig,
)
from contracts.config.agents import LOAD_TEST_LABEL, MANAGER_KNOBS
from contracts.database import credentials_path
from contracts.settings.cost import CostEngineSettings
from contracts.settings.environment import settings_env
from contracts.settings.llm import LLMSettings
from contracts.settings.manager import ManagerSettings
from contracts.settings.service import ServiceSettings
from contracts.settings.vault import VaultSettings
from contracts.settings.worker import TOOL_SERVERS_ENV, WorkerSettings
from contracts.telemetry import metrics
from infra.platform.names import (
    COST_ENGINE,
    DATABASE_SERVICE,
    MANAGER,
    TOOL_SERVER_LABEL,
    Namespace,
    database_namespace,
    pool_workload,
    tool_server_workload,
)
from infra.platform.runtime_secrets import (
    AGENT_TOKEN,
    AUTH_MOUNT,
    COST_ENGINE_TOKEN,
    MANAGER_API_TOKENS,
    MANAGER_WEBHOOK_TOKEN,
    PROVIDER_KEY_FILE,
    REDIS_SECRET_PATH,
    VAULT_CA_FILE,
    VAULT_TOKEN_FILE,
    SecretFile,
    vault_address,
)
from infra.platform.tracing import trace_settings

__all__ = [
    "CONTAINER_LOGS_MIB",
    "DRAIN_MARGIN_SECONDS",
    "EPHEMERAL_STORAGE",
    "LOGS_EPHEMERAL_STORAGE",
    "PORT_NAME",
    "PRE_STOP_SLEEP_SECONDS",
    "TMP_SIZE",
    "TRACK_LABEL",
    "WORKER_TERMINATION_GRACE_SECONDS",
    "Autoscaling",
    "Track",
    "Workload",
    "drain_timeout_seconds",
    "provider_key_file",
    "runtime_workloads",
    "tool_server_workloads",
]

TRACK_LABEL: Final = "agentops.io/track"
# The name of every workload's one container port and Service port: probes and the
# ServiceMonitors (monitoring layer) refer to it, never to the number.
PORT_NAME: Final = "http"
# Every runtime container sleeps this long in preStop: its endpoints are removed before SIGTERM
# arrives, so no new request reaches a pod that is stopping.
PRE_STOP_SLEEP_SECONDS: Final = 5
# An agent pod's grace period: in-flight tasks finish before the pod goes.
WORKER_TERMINATION_GRACE_SECONDS: Final = 120
# What the worker still does after its drain and before the kubelet's SIGKILL: deregister from
# the manager and settle the last usage records.
DRAIN_MARGIN_SECONDS: Final = 10

# What a runtime container writes to its node's disk. The root filesystem is read-only, so the
# writable layer stays empty; what is left is /tmp (an emptyDir, capped at TMP_SIZE) and
# stdout/stderr, which the kubelet keeps as rotated files (EKS' defaults: containerLogMaxSize
# 10Mi × containerLogMaxFiles 5). Requests equal limits: the scheduler reserves the disk a pod
# may fill, and the kubelet evicts the one pod that exceeds it instead of the node filling up.
TMP_SIZE_MIB: Final = 64
CONTAINER_LOGS_MIB: Final = 10 * 5
# Slack for the overlay's own metadata and files a library writes under /tmp at import.
_EPHEMERAL_SLACK_MIB: Final = 14
TMP_SIZE: Final = f"{TMP_SIZE_MIB}Mi"
EPHEMERAL_STORAGE: Final = f"{TMP_SIZE_MIB + CONTAINER_LOGS_MIB + _EPHEMERAL_SLACK_MIB}Mi"
# A container that writes nothing but its logs (the add-ons the scaling layer installs).
LOGS_EPHEMERAL_STORAGE: Final = f"{CONTAINER_LOGS_MIB + _EPHEMERAL_SLACK_MIB}Mi"

# The files each service reads, by the setting that names them.
_REDIS_PASSWORD = SecretFile("redis-password", REDIS_SECRET_PATH, key="password")


def drain_timeout_seconds(termination_grace_seconds: int) -> int:
    """How long a stopping worker lets in-flight tasks run: the grace period less the preStop
    sleep (it runs first and counts against the grace) and the margin for deregistration."""
    drain = termination_grace_seconds - PRE_STOP_SLEEP_SECONDS - DRAIN_MARGIN_SECONDS
    if drain <= 0:
        raise ValueError(f"a grace period of {termination_grace_seconds}s leaves no time to drain")
    return drain


class Track(StrEnum):
    """Blue/green tracks of the manager; the mesh splits task traffic between them."""

    BLUE = "blue"
    GREEN = "green"


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    cpu_percent: int
    memory_percent: int
    # External metric (through prometheus-adapter) and its per-replica target.
    queue_metric: str
    queue_selector: dict[str, str]
    queue_per_replica: int


@dataclass(frozen=True)
class Workload:
    name: str
    component: str
    namespace: Namespace
    image: ImageConfig
    resources: ResourcesConfig
    port: int
    args: tuple[str, ...]
    # The settings model the container's `args` run with (runtime/*/settings.py).
    settings: type[ServiceSettings]
    # AGENTOPS_* variables, built from `settings` (plus VaultSettings); the Redis URL (an output
    # of the state layer) and POD_NAME (downward API) are added by the agents layer.
    env: dict[str, str]
    replicas: int | None  # None: the HPA owns the count
    autoscaling: Autoscaling | None = None
    labels: dict[str, str] = field(default_factory=dict)
    termination_grace_seconds: int = 30
    # Files the Vault Agent Injector renders into the pod, from KV entries its policy allows.
    secret_files: tuple[SecretFile, ...] = ()
    # The identity shared by all tracks of one service: its Service, ServiceAccount and the
    # `app.kubernetes.io/name` label. Defaults to `name`.
    app: str = ""
    track: Track | None = None
    aws_policy_arns: tuple[str, ...] = ()
    # NVIDIA GPUs per replica: requested and limited, and the pod runs on the gpu node group.
    gpus: int = 0
    # One of ours (the runtime image: Redis URL, POD_NAME, /health and /ready); False: another
    # image (an MCP tool server), probed on its TCP port and given no runtime settings.
    runtime: bool = True
    # Settings models the container reads besides `settings` (a handler's, e.g. LLMSettings).
    extra_settings: tuple[type[BaseSettings], ...] = ()

    @property
    def identity(self) -> str:
        return self.app or self.name

    @property
    def owns_service(self) -> bool:
        """The first track of a service creates its Service and ServiceAccount."""
        return self.identity == self.name


def _service_host(name: str, namespace: Namespace) -> str:
    return f"{name}.{namespace.value}.svc.cluster.local"


def _service_url(name: str, namespace: Namespace, port: int) -> str:
    return f"http://{_service_host(name, namespace)}:{port}"


def _vault_env(cfg: PlatformConfig, identity: str) -> dict[str, str]:
    """Where the service's own Vault client (runtime/secrets) logs in: its Kubernetes-auth role
    is its service account, over TLS verified with the platform's CA — or, in the mesh, over
    the sidecars' mTLS to Vault's plaintext listener."""
    values: dict[str, object] = {
        "address": vault_address(cfg.mesh.enabled),
        "role": identity,
        "auth_mount": AUTH_MOUNT,
        "kv_mount": cfg.vault.kv_mount,
        "token_file": VAULT_TOKEN_FILE,
    }
    if not cfg.mesh.enabled:
        values["ca_file"] = VAULT_CA_FILE
    return settings_env(VaultSettings, values)


def _service_env(
    cfg: PlatformConfig,
    model: type[ServiceSettings],
    identity: str,
    files: dict[str, SecretFile],
    values: dict[str, object],
) -> dict[str, str]:
    """A service's environment: its settings, the files it reads by setting, and Vault's."""
    common = {
        "environment": cfg.environment.value,
        "redis_password_file": _REDIS_PASSWORD.path,
        # A task, a usage record, a reservation count as accepted once a replica has them.
        "redis_min_replicas": cfg.redis.replicas_to_confirm,
        **trace_settings(cfg),
    }
    paths = {setting: f.path for setting, f in files.items()}
    return {
        **settings_env(model, {**common, **values, **paths}),
        **_vault_env(cfg, identity),
    }


def provider_key_file(pool: AgentPoolConfig) -> SecretFile | None:
    """The file an llm pool's API key is rendered into: that one field of its KV entry."""
    if pool.provider is None:
        return None
    key = pool.provider.key
    return SecretFile(PROVIDER_KEY_FILE, key.path, key=key.field)


def _provider_env(pool: AgentPoolConfig) -> dict[str, str]:
    """The LLM handler's settings: the provider's base URL, the pool's model and the key file."""
    key_file = provider_key_file(pool)
    if pool.provider is None or key_file is None:
        return {}
    return settings_env(
        LLMSettings,
        {
            "base_url": str(pool.provider.base_url),
            "model": pool.model,
            "api_key_file": key_file.path,
        },
    )


def runtime_workloads(cfg: PlatformConfig) -> list[Workload]:
    worker_files = {
        "agent_token_file": SecretFile("agent-token", AGENT_TOKEN, key="token"),
        "cost_token_file": SecretFile("cost-token", COST_ENGINE_TOKEN, key="token"),
    }
    return [
        *_manager_workloads(cfg),
        _cost_engine_workload(cfg),
        *(_pool_workload(cfg, pool, worker_files) for pool in cfg.agents.pools),
    ]


def _manager_workloads(cfg: PlatformConfig) -> list[Workload]:
    """The manager (blue), and its green twin while the mesh splits traffic to a new tag."""
    agents = cfg.agents
    # Tokens a service accepts hold every value of their entry (old and new during a rotation);
    # tokens a service presents hold the current one.
    manager_files = {
        "api_token_file": SecretFile("api-tokens", MANAGER_API_TOKENS, key=None),
        "agent_token_file": SecretFile("agent-tokens", AGENT_TOKEN, key=None),
        "webhook_token_file": SecretFile("webhook-token", MANAGER_WEBHOOK_TOKEN, key=None),
    }
    m = agents.manager
    manager = Workload(
        name=MANAGER,
        component="manager",
        namespace=Namespace.PLATFORM,
        image=m.image,
        resources=m.resources,
        port=ports.MANAGER_HTTP,
        args=("serve", "manager"),
        settings=ManagerSettings,
        env=_service_env(
            cfg,
            ManagerSettings,
            MANAGER,
            manager_files,
            {
                # Tasks may name exactly the stack's pools; request types route to them.
                "agent_types": [pool.name for pool in agents.pools],
                "request_routes": agents.request_routes(),
                **{setting: getattr(m, knob) for knob, setting in MANAGER_KNOBS.items()},
            },
        ),
        replicas=m.replicas,
        track=Track.BLUE,
        aws_policy_arns=tuple(m.aws_policy_arns),
        secret_files=(_REDIS_PASSWORD, *manager_files.values()),
    )
    split = cfg.mesh.blue_green
    if not cfg.mesh.enabled or split.green_tag is None:
        return [manager]
    green = replace(
        manager,
        name=f"{MANAGER}-{Track.GREEN.value}",
        app=MANAGER,
        track=Track.GREEN,
        image=manager.image.model_copy(
            update={"tag": split.green_tag, "digest": split.green_digest}
        ),
    )
    return [manager, green]


def _cost_engine_workload(cfg: PlatformConfig) -> Workload:
    engine = cfg.agents.cost_engine
    files = {"api_token_file": SecretFile("api-tokens", COST_ENGINE_TOKEN, key=None)}
    return Workload(
        name=COST_ENGINE,
        component="cost-engine",
        namespace=Namespace.PLATFORM,
        image=engine.image,
        resources=engine.resources,
        port=ports.COST_ENGINE_HTTP,
        args=("serve", "cost-engine"),
        settings=CostEngineSettings,
        # The stack's cost config, as validated: budgets, limits and price overrides have
        # one source (Pulumi.<stack>.yaml), and a change rolls the engine's pods.
        env=_service_env(
            cfg,
            CostEngineSettings,
            COST_ENGINE,
            files,
            {"cost_config": cfg.cost.model_dump_json(by_alias=True)},
        ),
        replicas=engine.replicas,
        aws_policy_arns=tuple(engine.aws_policy_arns),
        secret_files=(_REDIS_PASSWORD, *files.values()),
    )


def _tool_servers_env(cfg: PlatformConfig, pool: str) -> dict[str, str]:
    """The MCP servers a pool may use, by name → URL (none: no variable)."""
    servers = cfg.agents.tool_servers_of(pool)
    if not servers:
        return {}
    urls = {
        s.name: _service_url(tool_server_workload(s.name), Namespace.AGENTS, s.port) + s.path
        for s in servers
    }
    return {TOOL_SERVERS_ENV: json.dumps(urls, sort_keys=True)}


def _pool_workload(
    cfg: PlatformConfig, pool: AgentPoolConfig, worker_files: dict[str, SecretFile]
) -> Workload:
    """An agent pool's workers: their settings, provider, tool servers, autoscaling."""
    manager_url = _service_url(MANAGER, Namespace.PLATFORM, ports.MANAGER_HTTP)
    cost_url = _service_url(COST_ENGINE, Namespace.PLATFORM, ports.COST_ENGINE_HTTP)
    drain = drain_timeout_seconds(WORKER_TERMINATION_GRACE_SECONDS)
    name = pool_workload(pool.name)
    values: dict[str, object] = {
        "agent_type": pool.name,
        "capacity": pool.capacity,
        "weight": pool.weight,
        "handler": pool.handler,
        "request_types": list(pool.request_types),
        "max_complexity": pool.max_complexity,
        "manager_url": manager_url,
        "cost_engine_url": cost_url,
        "drain_timeout_s": drain,
    }
    if pool.model is not None:
        values["model"] = pool.model
    bucket = cfg.pool_bucket(pool.name)
    if bucket is not None and cfg.network is not None:
        values["storage_bucket"] = bucket
        values["storage_region"] = cfg.network.region
    if pool.name in cfg.database_pools():
        values["database_host"] = _service_host(DATABASE_SERVICE, database_namespace(cfg))
        values["database_name"] = cfg.database.name
        values["database_credentials_path"] = credentials_path(pool.name)
        if not cfg.on_aws:
            # The local stack's in-cluster server speaks plaintext (no mesh there either).
            values["database_ssl"] = False
    key_file = provider_key_file(pool)
    env = {
        **_service_env(cfg, WorkerSettings, name, worker_files, values),
        **_provider_env(pool),
    }
    env.update(_tool_servers_env(cfg, pool.name))
    return Workload(
        name=name,
        component="agent-worker",
        namespace=Namespace.AGENTS,
        image=pool.image,
        resources=pool.resources,
        port=ports.WORKER_HTTP,
        args=("serve", "worker"),
        settings=WorkerSettings,
        env=env,
        replicas=None,
        autoscaling=Autoscaling(
            min_replicas=pool.min_replicas,
            max_replicas=pool.max_replicas,
            cpu_percent=pool.target_cpu_utilization,
            memory_percent=pool.target_memory_utilization,
            queue_metric=metrics.QUEUE_LENGTH,
            queue_selector={"agent_type": pool.name},
            queue_per_replica=pool.target_queue_length,
        ),
        labels={
            "agentops.io/agent-type": pool.name,
            **({LOAD_TEST_LABEL: "true"} if pool.load_test else {}),
        },
        # In-flight tasks finish before the pod goes (the worker drains on SIGTERM).
        termination_grace_seconds=WORKER_TERMINATION_GRACE_SECONDS,
        aws_policy_arns=tuple(pool.aws_policy_arns),
        secret_files=(
            _REDIS_PASSWORD,
            *worker_files.values(),
            *((key_file,) if key_file is not None else ()),
        ),
        gpus=pool.gpus,
        extra_settings=(LLMSettings,) if pool.provider is not None else (),
    )


def tool_server_workloads(cfg: PlatformConfig) -> list[Workload]:
    """The MCP tool servers: hardened like the runtime, each with its own service account and
    Vault role, reached only by the pools it allows (infra/platform/flows.py)."""
    return [
        Workload(
            name=tool_server_workload(s.name),
            component="mcp-tool-server",
            namespace=Namespace.AGENTS,
            image=s.image,
            resources=s.resources,
            port=s.port,
            args=(),
            settings=ServiceSettings,
            env={},
            replicas=s.replicas,
            labels={TOOL_SERVER_LABEL: s.name},
            secret_files=tuple(
                SecretFile(path.rsplit("/", 1)[-1], path, key=None) for path in s.vault_secrets
            ),
            runtime=False,
        )
        for s in cfg.agents.tool_servers
    ]


def zone_spread_is_hard(cfg: PlatformConfig) -> bool:
    """Prod refuses to pile replicas into one zone; other stacks prefer not to."""
    return cfg.environment is Environment.PROD
