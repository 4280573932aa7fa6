"""The runtime the platform ships: manager, cost engine and agent pools."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal, Self

from pydantic import AnyHttpUrl, Field, StringConstraints, field_validator, model_validator

from contracts.balancing import Strategy
from contracts.config.base import ConfigModel, DnsLabel, RuleViolation
from contracts.settings.manager import ManagerSettings
from contracts.units import Share

__all__ = [
    "DEFAULT_HANDLER",
    "HANDLERS",
    "KV_PLATFORM_AREA",
    "KV_POOLS_AREA",
    "LLM_HANDLER",
    "LOAD_TEST_LABEL",
    "MANAGER_KNOBS",
    "AgentPoolConfig",
    "AgentsConfig",
    "ImageConfig",
    "ManagerConfig",
    "ProviderConfig",
    "ProviderKeyConfig",
    "ResourcesConfig",
    "ServiceConfig",
    "ToolServerConfig",
    "cpu_millis",
    "memory_bytes",
    "pool_identity",
    "pool_secret_prefix",
]

_CPU = re.compile(r"^(\d+)(m?)$")
_MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti)?$")
_MEMORY_FACTOR = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# A request type, as the manager's agent registration accepts it (runtime/manager/api.py).
RequestType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$"),
]
# The worker's built-in deterministic handler (runtime/worker/handlers/work.py): demo and load
# tests; it echoes the payload and books a synthetic usage.
DEFAULT_HANDLER = "runtime.worker.handlers.work:build"
# The pod label that marks a load-test pool (`loadTest: true`): the policy pack lets prod run
# the work handler only under it.
LOAD_TEST_LABEL = "agentops.io/load-test"
# One chat completion on an OpenAI-compatible provider (runtime/worker/handlers/llm.py).
LLM_HANDLER = "runtime.worker.handlers.llm:build"
# The handlers a pool may name by a short word, besides an import path of its own.
HANDLERS = {"work": DEFAULT_HANDLER, "llm": LLM_HANDLER}
# Vault KV areas (under vault.kvMount): the platform services' and shared runtime secrets, and
# one subtree per pool's identity, where its provider key lives.
KV_PLATFORM_AREA = "platform"
KV_POOLS_AREA = "pools"


def pool_identity(pool: str) -> str:
    """A pool's Deployment, Service, ServiceAccount and Vault role name."""
    return f"agent-{pool}"


def pool_secret_prefix(pool: str) -> str:
    """The KV subtree a pool's identity owns."""
    return f"{KV_POOLS_AREA}/{pool_identity(pool)}"


# Hosts a provider may be reached at over plain http: a stand-in on the machine itself.
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# A KV v2 path under the stack's mount: segments of letters, digits, `_`, `.`, `-`.
_KV_PATH = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"


def cpu_millis(quantity: str) -> int:
    """Kubernetes CPU quantity (`500m`, `2`) in millicores."""
    m = _CPU.match(quantity)
    if not m:
        raise ValueError(f"{quantity!r} is not a CPU quantity like '500m' or '2'")
    return int(m.group(1)) * (1 if m.group(2) else 1000)


def memory_bytes(quantity: str) -> int:
    """Kubernetes memory quantity (`512Mi`, `2Gi`) in bytes."""
    m = _MEMORY.match(quantity)
    if not m:
        raise ValueError(f"{quantity!r} is not a memory quantity like '512Mi' or '2Gi'")
    return int(m.group(1)) * _MEMORY_FACTOR[m.group(2) or ""]


class ResourcesConfig(ConfigModel):
    cpu_request: str = Field(description="CPU request, e.g. 250m")
    cpu_limit: str = Field(description="CPU limit, ≥ the request")
    memory_request: str = Field(description="memory request, e.g. 256Mi")
    memory_limit: str = Field(description="memory limit, ≥ the request")

    @field_validator("cpu_request", "cpu_limit")
    @classmethod
    def _cpu(cls, v: str) -> str:
        cpu_millis(v)
        return v

    @field_validator("memory_request", "memory_limit")
    @classmethod
    def _mem(cls, v: str) -> str:
        memory_bytes(v)
        return v

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Self:
        if cpu_millis(self.cpu_limit) < cpu_millis(self.cpu_request):
            raise RuleViolation(
                "cpuLimit", self.cpu_limit, f"must be ≥ cpuRequest ({self.cpu_request})"
            )
        if memory_bytes(self.memory_limit) < memory_bytes(self.memory_request):
            raise RuleViolation(
                "memoryLimit", self.memory_limit, f"must be ≥ memoryRequest ({self.memory_request})"
            )
        return self


class ImageConfig(ConfigModel):
    repository: DnsLabel = Field(description="ECR repository name (one of cluster.ecrRepositories)")
    tag: str = Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        description="image tag; not 'latest' in prod",
    )
    digest: str | None = Field(default=None, description="sha256:<64 hex>; pins the exact image")

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is not None and not _DIGEST.match(v):
            raise ValueError("digest must be 'sha256:' followed by 64 lower-case hex digits")
        return v


def _policy_arns(arns: list[str]) -> list[str]:
    for arn in arns:
        if not arn.startswith("arn:aws:iam::") or ":policy/" not in arn:
            raise ValueError(f"{arn!r} is not an IAM policy ARN (arn:aws:iam::<acct>:policy/..)")
    return arns


_AWS_POLICIES_HELP = "IAM policy ARNs of the workload's IRSA role (none: no AWS rights)"


# The manager's knobs a stack sets (`agents.manager.<camelCase of the key>`) and the setting
# each one becomes (`AGENTOPS_<SETTING>` on the manager's Deployment). The setting declares
# it once — type, bounds, default, description — and the config field reuses that declaration.
MANAGER_KNOBS: Mapping[str, str] = MappingProxyType(
    {
        "strategy": "strategy",
        "heartbeat_ttl_seconds": "heartbeat_ttl_s",
        "visibility_timeout_seconds": "visibility_timeout_s",
        "max_attempts": "max_attempts",
        "max_queued_per_type": "max_queued_per_type",
        "task_retention_seconds": "task_retention_s",
        "dead_letter_cap": "dead_letter_cap",
    }
)


def _knob(config_name: str) -> Any:
    """The ManagerSettings field `config_name` maps to, as this config field's declaration."""
    return copy.copy(ManagerSettings.model_fields[MANAGER_KNOBS[config_name]])


class ServiceConfig(ConfigModel):
    """A runtime service the program deploys (agent manager, cost engine)."""

    image: ImageConfig = Field(description="image in the stack's ECR")
    replicas: int = Field(ge=1, le=50, description="replicas (≥ 3 for the manager in prod)")
    resources: ResourcesConfig = Field(description="requests and limits per replica")
    aws_policy_arns: list[str] = Field(default_factory=list, description=_AWS_POLICIES_HELP)

    @field_validator("aws_policy_arns")
    @classmethod
    def _arns(cls, arns: list[str]) -> list[str]:
        return _policy_arns(arns)


class ManagerConfig(ServiceConfig):
    """The agent manager: a runtime service plus how it queues and balances tasks."""

    # Declared once, in ManagerSettings (bounds, default, description); see MANAGER_KNOBS.
    strategy: Strategy = _knob("strategy")
    heartbeat_ttl_seconds: float = _knob("heartbeat_ttl_seconds")
    visibility_timeout_seconds: float = _knob("visibility_timeout_seconds")
    max_attempts: int = _knob("max_attempts")
    max_queued_per_type: int = _knob("max_queued_per_type")
    task_retention_seconds: int = _knob("task_retention_seconds")
    dead_letter_cap: int = _knob("dead_letter_cap")

    @model_validator(mode="after")
    def _heartbeat_within_visibility(self) -> Self:
        if self.visibility_timeout_seconds <= self.heartbeat_ttl_seconds:
            raise RuleViolation(
                "visibilityTimeoutSeconds",
                self.visibility_timeout_seconds,
                f"must be > heartbeatTtlSeconds ({self.heartbeat_ttl_seconds}): a live agent's "
                "tasks would be taken back",
            )
        return self


class ProviderKeyConfig(ConfigModel):
    """Where a provider's API key lives in Vault: one field of one KV v2 entry."""

    path: str = Field(
        pattern=_KV_PATH,
        max_length=200,
        description="KV path under vault.kvMount, e.g. pools/agent-code-generator/openai; "
        "read by this pool alone",
    )
    field: str = Field(
        default="apiKey",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="the entry's field that holds the key",
    )

    @field_validator("path")
    @classmethod
    def _no_dots(cls, v: str) -> str:
        if any(part in (".", "..") for part in v.split("/")):
            raise ValueError(f"{v!r}: no '.' or '..' segments (a policy must name the real path)")
        return v


class ProviderConfig(ConfigModel):
    """The model provider an LLM pool calls: an OpenAI-compatible chat-completions API."""

    base_url: AnyHttpUrl = Field(
        description="OpenAI-compatible API base, e.g. https://api.openai.com/v1 (https; "
        "http only for a stand-in on 127.0.0.1)"
    )
    models: list[str] = Field(
        min_length=1, description="models the pool may call here (each one of cost.models)"
    )
    key: ProviderKeyConfig = Field(description="where the API key lives in Vault")

    @field_validator("base_url")
    @classmethod
    def _scheme(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if url.scheme != "https" and url.host not in _LOOPBACK:
            raise ValueError(
                f"{url} is plain http to another machine: use https (http only for 127.0.0.1)"
            )
        if url.query or url.fragment or url.username or url.password:
            raise ValueError("the base URL carries no query, fragment or credentials")
        return url

    @field_validator("models")
    @classmethod
    def _unique(cls, models: list[str]) -> list[str]:
        twice = sorted({m for m in models if models.count(m) > 1})
        if twice:
            raise ValueError(f"models listed twice: {twice}")
        return models

    @property
    def host(self) -> str:
        assert self.base_url.host is not None
        return self.base_url.host

    @property
    def port(self) -> int:
        assert self.base_url.port is not None
        return self.base_url.port


class AgentPoolConfig(ConfigModel):
    name: DnsLabel = Field(description="agent type this pool serves, e.g. code-generator")
    image: ImageConfig = Field(description="agent-worker image in the stack's ECR")
    resources: ResourcesConfig = Field(description="requests and limits per replica")
    min_replicas: int = Field(ge=1, le=500, description="HPA floor (≥ 2 in prod)")
    max_replicas: int = Field(ge=1, le=500, description="HPA ceiling, ≥ minReplicas")
    target_cpu_utilization: int = Field(default=70, ge=10, le=95, description="HPA CPU target %")
    target_memory_utilization: int = Field(
        default=80, ge=10, le=95, description="HPA memory target %"
    )
    target_queue_length: int = Field(
        default=10, ge=1, le=10000, description="HPA target: queued tasks per replica"
    )
    capacity: int = Field(default=4, ge=1, le=256, description="tasks one replica runs at once")
    weight: int = Field(default=1, ge=1, le=100, description="weight for weighted balancing")
    handler: str = Field(
        default=DEFAULT_HANDLER,
        pattern=r"^([A-Za-z_][\w.]*:[A-Za-z_]\w*|work|llm)$",
        description="handler the pool's workers run: work (demo, load tests), llm (a model "
        "provider), or an import path module:factory",
    )
    provider: ProviderConfig | None = Field(
        default=None, description="the model provider (required with the llm handler)"
    )
    load_test: bool = Field(
        default=False,
        description="a load-test pool: the only kind prod accepts on the work handler",
    )
    model: str | None = Field(
        default=None,
        description="model the pool's tasks ask the cost engine for (one of cost.models)",
    )
    request_types: list[RequestType] = Field(
        default_factory=list,
        description="request types routed to this pool (unique across pools)",
    )
    max_complexity: Share = Field(
        default=1.0, description="hardest task (0..1) the pool's agents take"
    )
    aws_policy_arns: list[str] = Field(default_factory=list, description=_AWS_POLICIES_HELP)
    gpus: int = Field(
        default=0,
        ge=0,
        le=16,
        description="NVIDIA GPUs per replica (nvidia.com/gpu); runs the pool on the gpu node group",
    )

    @field_validator("aws_policy_arns")
    @classmethod
    def _arns(cls, arns: list[str]) -> list[str]:
        return _policy_arns(arns)

    @field_validator("handler")
    @classmethod
    def _handler_path(cls, v: str) -> str:
        return HANDLERS.get(v, v)

    @model_validator(mode="after")
    def _replicas(self) -> Self:
        if self.max_replicas < self.min_replicas:
            raise RuleViolation(
                "maxReplicas", self.max_replicas, f"must be ≥ minReplicas ({self.min_replicas})"
            )
        return self

    @model_validator(mode="after")
    def _handler_needs(self) -> Self:
        if self.llm and self.provider is None:
            raise RuleViolation("provider", None, "the llm handler needs a provider")
        if not self.llm and self.provider is not None:
            raise RuleViolation(
                "provider", str(self.provider.base_url), "only the llm handler calls a provider"
            )
        if self.load_test and self.handler != DEFAULT_HANDLER:
            raise RuleViolation("loadTest", True, "only a pool on the work handler is a load test")
        if self.provider is not None:
            if self.model is None:
                raise RuleViolation(
                    "model", None, f"an llm pool names its model, one of {self.provider.models}"
                )
            if self.model not in self.provider.models:
                raise RuleViolation(
                    "model", self.model, f"must be one of provider.models {self.provider.models}"
                )
        return self

    @property
    def llm(self) -> bool:
        return self.handler == LLM_HANDLER


class ToolServerConfig(ConfigModel):
    """An MCP tool server: a governed workload only the pools it allows may call."""

    name: DnsLabel = Field(description="server name; the model sees its tools as <name>__<tool>")
    image: ImageConfig = Field(description="the server's image in the stack's ECR (pinned)")
    transport: Literal["streamable-http"] = Field(
        default="streamable-http", description="MCP transport (streamable HTTP only)"
    )
    port: int = Field(default=8080, ge=1024, le=65535, description="port the server listens on")
    path: str = Field(default="/mcp", pattern=r"^/[A-Za-z0-9/_.-]*$", description="MCP endpoint")
    metrics_path: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9/_.-]*$")] | None = Field(
        default="/metrics",
        description=(
            "path of its Prometheus metrics on `port` (scraped by a ServiceMonitor of its own); "
            "null: it exposes none, so nothing scrapes it (refused in prod with monitoring on)"
        ),
    )
    tools: list[str] = Field(
        default_factory=list, description="tools it serves (documentation; the SDK discovers them)"
    )
    resources: ResourcesConfig = Field(description="requests and limits per replica")
    replicas: int = Field(default=2, ge=1, le=50, description="replicas")
    allowed_pools: list[DnsLabel] = Field(
        default_factory=list, description="pools whose workers may call it (none: nobody)"
    )
    vault_secrets: list[
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*$")]
    ] = Field(
        default_factory=list,
        description="KV paths (under the platform's mount) rendered as files into its pods",
    )

    @field_validator("name")
    @classmethod
    def _no_separator(cls, v: str) -> str:
        if "__" in v:
            raise ValueError("a tool server name has no '__' (it separates server and tool)")
        return v


class AgentsConfig(ConfigModel):
    manager: ManagerConfig = Field(description="the agent manager Deployment")
    cost_engine: ServiceConfig = Field(description="the cost engine Deployment")
    pools: list[AgentPoolConfig] = Field(min_length=1, description="one Deployment per agent type")
    tool_servers: list[ToolServerConfig] = Field(
        default_factory=list, description="MCP tool servers and the pools that may call them"
    )

    @model_validator(mode="after")
    def _tool_servers(self) -> Self:
        pools = {p.name for p in self.pools}
        seen: set[str] = set()
        for i, server in enumerate(self.tool_servers):
            if server.name in seen:
                raise RuleViolation(f"toolServers[{i}].name", server.name, "must be unique")
            seen.add(server.name)
            for j, pool in enumerate(server.allowed_pools):
                if pool not in pools:
                    raise RuleViolation(
                        f"toolServers[{i}].allowedPools[{j}]",
                        pool,
                        f"must be one of the pools {sorted(pools)}",
                    )
        return self

    def tool_servers_of(self, pool: str) -> list[ToolServerConfig]:
        """The tool servers a pool may call."""
        return [s for s in self.tool_servers if pool in s.allowed_pools]

    @model_validator(mode="after")
    def _unique_pools(self) -> Self:
        names = [p.name for p in self.pools]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise RuleViolation(f"pools[{i}].name", name, "pool names must be unique")
        served: dict[str, str] = {}
        for i, pool in enumerate(self.pools):
            for j, request_type in enumerate(pool.request_types):
                if request_type in served:
                    raise RuleViolation(
                        f"pools[{i}].requestTypes[{j}]",
                        request_type,
                        f"already routed to pool {served[request_type]}: one pool per type",
                    )
                served[request_type] = pool.name
        return self

    def request_routes(self) -> dict[str, str]:
        """Request type → the agent type (pool) that serves it: the manager's routing table."""
        return {t: pool.name for pool in self.pools for t in pool.request_types}

    def images(self) -> list[tuple[str, ImageConfig]]:
        """Every image with the config key that sets it."""
        found = [
            ("manager.image", self.manager.image),
            ("costEngine.image", self.cost_engine.image),
        ]
        found += [(f"pools[{i}].image", p.image) for i, p in enumerate(self.pools)]
        found += [(f"toolServers[{i}].image", t.image) for i, t in enumerate(self.tool_servers)]
        return found
