"""The Pulumi program: read the stack's typed config, then wire the layers together.

Layers live in `infra/layers/`, one ComponentResource each; nothing here builds a resource
of its own beyond the Kubernetes provider of the local stack.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import stack_config as platform_config
from infra.layers.agents import Agents, AgentsArgs
from infra.layers.cluster import Cluster, ClusterArgs
from infra.layers.database import Database, DatabaseArgs
from infra.layers.irsa import OidcIdentity
from infra.layers.logs import LogShipping, LogShippingArgs
from infra.layers.mesh import Mesh, MeshArgs
from infra.layers.monitoring import ElastiCacheTarget, Monitoring, MonitoringArgs
from infra.layers.namespaces import Namespaces, NamespacesArgs
from infra.layers.network import Network, NetworkArgs
from infra.layers.registry import Registry, RegistryArgs
from infra.layers.scaling import AwsScaling, Scaling, ScalingArgs
from infra.layers.state import AwsPlacement, Redis, RedisArgs
from infra.layers.storage import Storage, StorageArgs
from infra.layers.tagging import Tagging
from infra.layers.vault import AwsIdentity, Vault, VaultArgs
from infra.platform.names import pool_workload

# Validation happens first: a bad value fails here, before any resource is registered.
cfg = platform_config.load()
secrets = {
    spec.key: platform_config.require_secret(spec.key, spec.purpose)
    for spec in cfg.required_secrets()
}
tagging = Tagging(cfg.environment, cfg.tags)

kubernetes: k8s.Provider
repository_urls: dict[str, pulumi.Output[str]] | None = None
placement: AwsPlacement | None = None
aws_identity: AwsIdentity | None = None
oidc: OidcIdentity | None = None
aws_scaling: AwsScaling | None = None
pool_policies: dict[str, pulumi.Output[str]] = {}
if cfg.network is not None and cfg.cluster is not None:
    region = pulumi.Config("aws").require("region")
    platform_config.check_region(cfg, region)
    network = Network(
        "network",
        NetworkArgs(
            config=cfg.network, region=region, cluster_name=cfg.cluster.name, tagging=tagging
        ),
    )
    cluster = Cluster(
        "cluster",
        ClusterArgs(
            config=cfg.cluster,
            vpc_id=network.vpc_id,
            private_subnet_ids=network.private_subnet_ids,
            region=region,
            tagging=tagging,
        ),
    )
    registry = Registry(
        "registry",
        RegistryArgs(repositories=cfg.cluster.ecr_repositories, prefix="agentops", tagging=tagging),
    )
    kubernetes = cluster.provider
    repository_urls = registry.repository_urls
    placement = AwsPlacement(
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        node_security_group_id=cluster.node_security_group_id,
        tagging=tagging,
    )
    oidc = OidcIdentity(provider_arn=cluster.oidc_provider_arn, issuer_url=cluster.oidc_issuer_url)
    aws_scaling = AwsScaling(
        region=region, node_group_arns=cluster.node_group_arns, oidc=oidc, tagging=tagging
    )
    aws_identity = AwsIdentity(
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer_url=cluster.oidc_issuer_url,
        region=region,
        tagging=tagging,
    )
    if cfg.storage.enabled:
        storage = Storage("storage", StorageArgs(config=cfg, tagging=tagging))
        pool_policies = {pool_workload(p): policy for p, policy in storage.pool_policies.items()}
        pulumi.export("poolBuckets", {p.name: cfg.pool_bucket(p.name) for p in cfg.agents.pools})
    pulumi.export("clusterName", cluster.cluster_name)
    pulumi.export("clusterEndpoint", cluster.endpoint)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
    pulumi.export("ecrRepositoryUrls", registry.repository_urls)
    pulumi.export("vpcId", network.vpc_id)
    pulumi.export("privateSubnetIds", network.private_subnet_ids)
    pulumi.export("publicSubnetIds", network.public_subnet_ids)
else:
    assert cfg.local_cluster is not None
    kubernetes = k8s.Provider(
        "local-k8s", context=cfg.local_cluster.context, enable_server_side_apply=True
    )

namespaces = Namespaces("namespaces", NamespacesArgs(config=cfg, provider=kubernetes))
Scaling(
    "scaling",
    ScalingArgs(config=cfg, provider=kubernetes, depends_on=namespaces.resources, aws=aws_scaling),
)
redis = Redis(
    "state",
    RedisArgs(config=cfg, provider=kubernetes, depends_on=namespaces.resources, aws=placement),
)
agents = Agents(
    "agents",
    AgentsArgs(
        config=cfg,
        provider=kubernetes,
        repository_urls=repository_urls,
        depends_on=namespaces.resources,
        redis_url=redis.url,
        oidc=oidc,
        tagging=tagging if oidc is not None else None,
        aws_inline_policies=pool_policies,
    ),
)
monitoring: Monitoring | None = None
if cfg.monitoring.enabled:
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            config=cfg,
            provider=kubernetes,
            secrets=secrets,
            depends_on=namespaces.resources,
            elasticache=(
                ElastiCacheTarget(redis.elasticache_endpoint, redis.password)
                if redis.elasticache_endpoint is not None
                else None
            ),
        ),
    )
if cfg.vault.enabled:
    vault = Vault(
        "vault",
        VaultArgs(
            config=cfg,
            provider=kubernetes,
            depends_on=namespaces.resources,
            aws=aws_identity,
            vault_token=secrets.get("vaultToken"),
            redis_password=redis.password,
            manager_webhook_token=(
                monitoring.manager_webhook_token if monitoring is not None else None
            ),
        ),
    )
    pulumi.export("vaultCaCert", vault.ca_pem)
    if cfg.database.enabled and vault.api is not None:
        database = Database(
            "database",
            DatabaseArgs(
                config=cfg,
                placement=placement,
                provider=kubernetes,
                depends_on=namespaces.resources,
                vault_api=vault.api,
            ),
        )
        pulumi.export("databaseAddress", database.address)
if cfg.monitoring.logs.enabled and oidc is not None:
    LogShipping(
        "logs",
        LogShippingArgs(
            config=cfg,
            provider=kubernetes,
            depends_on=namespaces.resources,
            region=pulumi.Config("aws").require("region"),
            oidc=oidc,
            tagging=tagging,
        ),
    )
if cfg.mesh.enabled:
    Mesh("mesh", MeshArgs(config=cfg, provider=kubernetes, depends_on=namespaces.resources))

pulumi.export("redisUrl", redis.url)
pulumi.export("redisPassword", redis.password)
pulumi.export("environment", cfg.environment.value)
pulumi.export("kubernetesVersion", cfg.kubernetes_version)
