"""The whole stack's configuration and the rules that tie its layers together."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from contracts import versions
from contracts.config.agents import (
    DEFAULT_HANDLER,
    KV_PLATFORM_AREA,
    AgentsConfig,
    pool_secret_prefix,
)
from contracts.config.base import ConfigModel, RuleViolation
from contracts.config.cluster import ClusterConfig, NodeGroupRole
from contracts.config.cost import CostConfig
from contracts.config.database import DatabaseConfig
from contracts.config.mesh import MeshConfig
from contracts.config.monitoring import MonitoringConfig
from contracts.config.network import NatMode, NetworkConfig
from contracts.config.state import APPENDFSYNC_LOSS_WINDOW, Appendfsync, RedisConfig, RedisMode
from contracts.config.storage import (
    BUCKET_NAME_MAX,
    StorageConfig,
    pool_bucket_name,
    storage_hosts,
)
from contracts.config.tags import TagsConfig
from contracts.config.vault import UnsealMode, VaultConfig

__all__ = ["Environment", "LocalClusterConfig", "PlatformConfig", "SecretSpec"]

PROD_MIN_AZS = 3
PROD_MIN_MANAGER_REPLICAS = 3
PROD_MIN_POOL_REPLICAS = 2
HTTPS_PORT = 443


class Environment(StrEnum):
    STAGING = "staging"
    PROD = "prod"
    LOCAL = "local"


class LocalClusterConfig(ConfigModel):
    """A Kubernetes cluster the operator already has (kind, k3d, a lab cluster)."""

    context: str | None = Field(default=None, description="kubeconfig context; default: current")
    kubernetes_version: str = Field(
        description=f"the cluster's minor, one of {', '.join(versions.SUPPORTED_MINORS)}"
    )

    @model_validator(mode="after")
    def _supported(self) -> Self:
        if self.kubernetes_version not in versions.VERSIONS:
            raise RuleViolation(
                "kubernetesVersion",
                self.kubernetes_version,
                f"supported minors: {', '.join(versions.SUPPORTED_MINORS)}",
            )
        return self


class SecretSpec(ConfigModel):
    """A secret the operator must set with `pulumi config set --secret`."""

    key: str
    purpose: str


class PlatformConfig(ConfigModel):
    environment: Environment = Field(description="staging | prod | local")
    tags: TagsConfig = Field(description="ownership and cost tags on every AWS resource")
    network: NetworkConfig | None = Field(default=None, description="AWS VPC; absent in local")
    cluster: ClusterConfig | None = Field(default=None, description="EKS; absent in local")
    local_cluster: LocalClusterConfig | None = Field(
        default=None, description="the existing cluster the local stack targets"
    )
    mesh: MeshConfig = Field(default_factory=MeshConfig, description="Istio zero-trust mesh")
    redis: RedisConfig = Field(
        default_factory=RedisConfig, description="Redis for durable queues and the ledger"
    )
    vault: VaultConfig = Field(default_factory=VaultConfig, description="Vault for runtime secrets")
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig, description="Prometheus, Alertmanager, Grafana, tracing"
    )
    storage: StorageConfig = Field(
        default_factory=StorageConfig, description="agent storage: one S3 bucket per pool"
    )
    database: DatabaseConfig = Field(
        default_factory=DatabaseConfig,
        description="optional PostgreSQL (RDS) for the pools, with Vault dynamic credentials",
    )
    agents: AgentsConfig = Field(description="the runtime: manager, cost engine, agent pools")
    cost: CostConfig = Field(description="budgets, prices and model routing")

    @property
    def on_aws(self) -> bool:
        return self.environment is not Environment.LOCAL

    @property
    def kubernetes_version(self) -> str:
        if self.cluster is not None:
            return self.cluster.kubernetes_version
        assert self.local_cluster is not None  # guaranteed by _layers_present
        return self.local_cluster.kubernetes_version

    @model_validator(mode="after")
    def _layers_present(self) -> Self:
        if self.on_aws:
            for key in ("network", "cluster"):
                if getattr(self, key) is None:
                    raise RuleViolation(key, None, f"required in the {self.environment} stack")
            if self.local_cluster is not None:
                raise RuleViolation("localCluster", "set", "only the local stack targets one")
        else:
            for key in ("network", "cluster"):
                if getattr(self, key) is not None:
                    raise RuleViolation(key, "set", "the local stack has no AWS layer")
            if self.local_cluster is None:
                raise RuleViolation("localCluster", None, "required in the local stack")
            if self.redis.mode is RedisMode.ELASTICACHE:
                raise RuleViolation("redis.mode", "elasticache", "the local stack has no AWS")
            if self.vault.unseal is UnsealMode.AWS_KMS:
                raise RuleViolation("vault.unseal", "awskms", "the local stack has no AWS KMS")
            if self.storage.enabled:
                raise RuleViolation(
                    "storage.enabled", True, "the local stack has no S3: agent storage is off there"
                )
            if self.monitoring.logs.enabled:
                raise RuleViolation(
                    "monitoring.logs.enabled", True, "the local stack has no CloudWatch Logs"
                )
        return self

    def database_pools(self) -> list[str]:
        """The pools that get database credentials (none: the database is off)."""
        return list(self.database.pools) if self.database.enabled else []

    @model_validator(mode="after")
    def _database_users(self) -> Self:
        known = [p.name for p in self.agents.pools]
        for i, pool in enumerate(self.database.pools):
            if pool not in known:
                raise RuleViolation(f"database.pools[{i}]", pool, f"must be one of {known}")
        if not self.database.enabled:
            return self
        if not self.database.pools:
            raise RuleViolation(
                "database.pools", [], f"name the pools that use the database, of {known}"
            )
        if not self.vault.enabled:
            raise RuleViolation(
                "vault.enabled",
                False,
                "each pool's database logins are leased from Vault's database secrets engine "
                "(no static or shared password): turn Vault on (or database.enabled off)",
            )
        if not self.vault.configure:
            raise RuleViolation(
                "vault.configure",
                False,
                "the database's dynamic credentials are set up in Vault by the program: "
                "turn it on (or database.enabled off)",
            )
        if self.environment is Environment.PROD and not self.database.multi_az:
            raise RuleViolation(
                "database.multiAz", False, "prod runs the database with a standby in another AZ"
            )
        return self

    def pool_bucket(self, pool: str) -> str | None:
        """The S3 bucket of an agent pool (None: storage is off)."""
        if not self.storage.enabled:
            return None
        assert self.storage.bucket_prefix is not None  # StorageConfig requires it when enabled
        return pool_bucket_name(self.storage.bucket_prefix, self.environment.value, pool)

    def pool_storage_hosts(self, pool: str) -> tuple[str, ...]:
        """The hosts a pool's worker calls to use its bucket (none: storage is off)."""
        bucket = self.pool_bucket(pool)
        if bucket is None or self.network is None:
            return ()
        return storage_hosts(bucket, self.network.region)

    @model_validator(mode="after")
    def _bucket_names_fit(self) -> Self:
        for i, pool in enumerate(self.agents.pools):
            bucket = self.pool_bucket(pool.name)
            if bucket is not None and len(bucket) > BUCKET_NAME_MAX:
                raise RuleViolation(
                    "storage.bucketPrefix",
                    self.storage.bucket_prefix,
                    f"bucket {bucket} of agents.pools[{i}] is {len(bucket)} characters; "
                    f"S3 allows {BUCKET_NAME_MAX}: shorten the prefix",
                )
        return self

    @model_validator(mode="after")
    def _images_in_registry(self) -> Self:
        if self.cluster is None:
            return self
        repos = set(self.cluster.ecr_repositories)
        for key, image in self.agents.images():
            if image.repository not in repos:
                raise RuleViolation(
                    f"agents.{key}.repository",
                    image.repository,
                    f"must be one of cluster.ecrRepositories {sorted(repos)}",
                )
        return self

    @model_validator(mode="after")
    def _runtime_needs(self) -> Self:
        # The runtime's tokens and Redis password are rendered from Vault into its pods; without
        # Vault no runtime service can start.
        if not self.vault.enabled:
            raise RuleViolation(
                "vault.enabled", False, "the runtime reads its tokens from Vault: keep it on"
            )
        for i, pool in enumerate(self.agents.pools):
            if pool.model is not None and pool.model not in self.cost.models:
                raise RuleViolation(
                    f"agents.pools[{i}].model",
                    pool.model,
                    f"must be a model the cost engine prices: {sorted(self.cost.models)}",
                )
        if self.monitoring.enabled and not self.monitoring.alerting.reaches_people():
            raise RuleViolation(
                "monitoring.alerting",
                self.monitoring.alerting.model_dump(by_alias=True, exclude_none=True),
                "every alert must reach people: configure slack or email "
                "(pagerduty pages critical alerts only)",
            )
        return self

    @model_validator(mode="after")
    def _pool_providers(self) -> Self:
        """An llm pool's provider: https in AWS stacks, models the cost engine prices (and
        every downgrade of the pool's model among them), a key no one else reads."""
        keys: dict[str, str] = {}
        for i, pool in enumerate(self.agents.pools):
            key = f"agents.pools[{i}].provider"
            provider = pool.provider
            if provider is None:
                continue
            if self.on_aws and provider.base_url.scheme != "https":
                raise RuleViolation(
                    f"{key}.baseUrl", str(provider.base_url), "AWS stacks call providers over https"
                )
            if self.on_aws and provider.port != HTTPS_PORT:
                raise RuleViolation(
                    f"{key}.baseUrl",
                    str(provider.base_url),
                    "egress to a provider is port 443 only (its flow and ServiceEntry)",
                )
            for j, model in enumerate(provider.models):
                if model not in self.cost.models:
                    raise RuleViolation(
                        f"{key}.models[{j}]",
                        model,
                        f"must be a model the cost engine prices: {sorted(self.cost.models)}",
                    )
            assert pool.model is not None
            chain = [pool.model]
            while chain[-1] in self.cost.downgrade and len(chain) <= len(self.cost.downgrade):
                chain.append(self.cost.downgrade[chain[-1]])
                if chain[-1] not in provider.models:
                    raise RuleViolation(
                        f"{key}.models",
                        provider.models,
                        f"the cost engine may downgrade {' → '.join(chain)}: list "
                        f"{chain[-1]} too (the pool calls no other provider)",
                    )
            path = provider.key.path
            others = [pool_secret_prefix(p.name) for p in self.agents.pools if p.name != pool.name]
            taken = [a for a in (KV_PLATFORM_AREA, *others) if path.startswith(f"{a}/")]
            if taken:
                raise RuleViolation(
                    f"{key}.key.path",
                    path,
                    f"lies under {taken[0]}/, which another identity reads: "
                    f"use the pool's own {pool_secret_prefix(pool.name)}/…",
                )
            if path in keys:
                raise RuleViolation(
                    f"{key}.key.path", path, f"pool {keys[path]} reads it: one pool per key"
                )
            keys[path] = pool.name
        return self

    @model_validator(mode="after")
    def _gpus_have_nodes(self) -> Self:
        groups = self.cluster.node_groups if self.cluster is not None else []
        if any(g.role is NodeGroupRole.GPU for g in groups):
            return self
        for i, pool in enumerate(self.agents.pools):
            if pool.gpus:
                raise RuleViolation(
                    f"agents.pools[{i}].gpus",
                    pool.gpus,
                    "needs a node group with role gpu in cluster.nodeGroups; "
                    "this stack has none (use 0)",
                )
        return self

    @model_validator(mode="after")
    def _tool_servers_observed(self) -> Self:
        """Prod watches every workload it runs: a tool server there exposes metrics. Elsewhere one
        without them gets no ServiceMonitor and no scrape flow."""
        if self.environment is not Environment.PROD or not self.monitoring.enabled:
            return self
        for i, server in enumerate(self.agents.tool_servers):
            if server.metrics_path is None:
                raise RuleViolation(
                    f"agents.toolServers[{i}].metricsPath",
                    None,
                    "prod with monitoring.enabled scrapes every tool server: give the path of "
                    "its Prometheus metrics on its port (see docs/operations.md#tool-servers)",
                )
        return self

    @model_validator(mode="after")
    def _prod_rules(self) -> Self:
        if self.environment is not Environment.PROD:
            return self
        assert self.network is not None and self.cluster is not None
        if len(self.network.availability_zones) < PROD_MIN_AZS:
            raise RuleViolation(
                "network.availabilityZones",
                self.network.availability_zones,
                f"prod needs at least {PROD_MIN_AZS} availability zones",
            )
        if self.network.nat is not NatMode.PER_AZ:
            raise RuleViolation(
                "network.nat", str(self.network.nat), "prod needs one NAT gateway per AZ (perAz)"
            )
        if self.cluster.endpoint.public_access:
            raise RuleViolation(
                "cluster.endpoint.publicAccess", True, "prod exposes a private endpoint only"
            )
        if not self.vault.enabled or not self.vault.ha:
            raise RuleViolation(
                "vault.replicas", self.vault.replicas, "prod needs HA Vault (≥ 3 raft peers)"
            )
        if self.vault.unseal is not UnsealMode.AWS_KMS:
            raise RuleViolation(
                "vault.unseal", str(self.vault.unseal), "prod auto-unseals (awskms)"
            )
        if self.redis.appendfsync is Appendfsync.NO:
            raise RuleViolation(
                "redis.appendfsync",
                "no",
                "prod fsyncs its AOF (always, or everysec deliberately); with no a host crash "
                f"loses {APPENDFSYNC_LOSS_WINDOW[Appendfsync.NO]}",
            )
        if self.mesh.enabled and self.mesh.jwt is None:
            raise RuleViolation("mesh.jwt", None, "prod validates callers' JWTs on the task API")
        for key, image in self.agents.images():
            if image.tag == "latest":
                raise RuleViolation(
                    f"agents.{key}.tag", "latest", "prod pins images: use a version tag or digest"
                )
            if image.digest is None:
                raise RuleViolation(
                    f"agents.{key}.digest", None, "prod runs images pinned by digest (sha256:...)"
                )
        split = self.mesh.blue_green
        if split.green_tag is not None and split.green_digest is None:
            raise RuleViolation(
                "mesh.blueGreen.greenDigest", None, "prod runs images pinned by digest"
            )
        if self.agents.manager.replicas < PROD_MIN_MANAGER_REPLICAS:
            raise RuleViolation(
                "agents.manager.replicas",
                self.agents.manager.replicas,
                f"prod runs at least {PROD_MIN_MANAGER_REPLICAS} manager replicas",
            )
        for i, pool in enumerate(self.agents.pools):
            if pool.handler == DEFAULT_HANDLER and not pool.load_test:
                raise RuleViolation(
                    f"agents.pools[{i}].loadTest",
                    False,
                    "prod runs real agents: the work handler echoes payloads and books synthetic "
                    "usage against real budgets; use handler llm with a provider, or set "
                    "loadTest: true for a load-test pool",
                )
        for i, pool in enumerate(self.agents.pools):
            if pool.min_replicas < PROD_MIN_POOL_REPLICAS:
                raise RuleViolation(
                    f"agents.pools[{i}].minReplicas",
                    pool.min_replicas,
                    f"prod keeps at least {PROD_MIN_POOL_REPLICAS} replicas per pool",
                )
        if self.monitoring.enabled and self.monitoring.alerting.pagerduty is None:
            raise RuleViolation(
                "monitoring.alerting.pagerduty", None, "prod pages someone on critical alerts"
            )
        return self

    def required_secrets(self) -> list[SecretSpec]:
        """Every secret this configuration needs from `pulumi config set --secret`."""
        specs: list[SecretSpec] = []
        if self.vault.enabled and self.vault.configure:
            specs.append(
                SecretSpec(
                    key="vaultToken", purpose="Vault token that configures auth and policies"
                )
            )
        alerting = self.monitoring.alerting if self.monitoring.enabled else None
        if alerting is not None:
            if alerting.slack is not None:
                specs.append(SecretSpec(key="slackWebhookUrl", purpose="Slack alert receiver"))
            if alerting.email is not None:
                specs.append(SecretSpec(key="smtpPassword", purpose="e-mail alert receiver"))
            if alerting.pagerduty is not None and alerting.pagerduty.enabled:
                specs.append(
                    SecretSpec(key="pagerdutyRoutingKey", purpose="PagerDuty critical receiver")
                )
        return specs
