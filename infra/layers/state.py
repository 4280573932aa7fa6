"""Redis for the runtime's durable queues and ledger: in-cluster (Helm, Sentinel) or
ElastiCache (Multi-AZ, TLS, encrypted at rest), chosen per stack.

Either way the password is generated here and leaves only as a Pulumi secret; the connection
URL the runtime is given carries no password (the runtime reads it from Vault).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from contracts import ports
from contracts.config import PlatformConfig, RedisMode
from contracts.config.state import ElastiCacheConfig
from infra.layers.shared import pinned_chart, rotating_key
from infra.layers.tagging import Tagging
from infra.platform.names import Namespace
from infra.platform.workloads import EPHEMERAL_STORAGE

__all__ = ["AwsPlacement", "Redis", "RedisArgs"]

RELEASE = "redis"
SENTINEL_PORT = 26379
SENTINEL_MASTER = "mymaster"


@dataclass(frozen=True)
class AwsPlacement:
    """Where ElastiCache goes: the VPC's private subnets, reachable from the nodes only."""

    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    node_security_group_id: pulumi.Input[str]
    tagging: Tagging

    def nodes_only(
        self, name: str, port: int, description: str, nodes: str, parent: pulumi.Resource
    ) -> aws.ec2.SecurityGroup:
        """A security group `<name>-clients` admitting `port` from the EKS nodes only."""
        return aws.ec2.SecurityGroup(
            f"{name}-clients",
            vpc_id=self.vpc_id,
            description=description,
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=port,
                    to_port=port,
                    security_groups=[self.node_security_group_id],
                    description=nodes,
                )
            ],
            tags=self.tagging(f"{name}-clients"),
            opts=pulumi.ResourceOptions(parent=parent),
        )


@dataclass(frozen=True)
class RedisArgs:
    config: PlatformConfig
    provider: k8s.Provider
    depends_on: list[pulumi.Resource]
    aws: AwsPlacement | None


class Redis(pulumi.ComponentResource):
    url: pulumi.Output[str]
    password: pulumi.Output[str]
    # ElastiCache's primary endpoint (None in the cluster): the exporter the monitoring layer
    # deploys for it connects there.
    elasticache_endpoint: pulumi.Output[str] | None = None

    def __init__(
        self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Redis", name, None, opts)
        cfg = args.config
        # No special characters: the value ends up in URLs and redis.conf unquoted.
        password = random.RandomPassword(
            f"{name}-password", length=40, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.password = pulumi.Output.secret(password.result)
        if cfg.redis.mode is RedisMode.ELASTICACHE:
            if args.aws is None:
                raise ValueError("ElastiCache needs the AWS network placement")
            self.url = self._elasticache(name, cfg, args.aws, password)
        else:
            self.url = self._in_cluster(name, cfg, args, password)
        self.register_outputs({"url": self.url, "password": self.password})

    def _in_cluster(
        self, name: str, cfg: PlatformConfig, args: RedisArgs, password: random.RandomPassword
    ) -> pulumi.Output[str]:
        redis = cfg.redis.in_cluster
        ns = Namespace.PLATFORM.value
        inside = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=args.depends_on
        )
        secret = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="redis-auth", namespace=ns),
            string_data={"redis-password": password.result},
            opts=inside,
        )
        # Data is on the volume claim; on the node's disk the chart's tmp/log emptyDir and logs.
        resources = {
            "requests": {
                "cpu": redis.resources.cpu_request,
                "memory": redis.resources.memory_request,
                "ephemeral-storage": EPHEMERAL_STORAGE,
            },
            "limits": {
                "cpu": redis.resources.cpu_limit,
                "memory": redis.resources.memory_limit,
                "ephemeral-storage": EPHEMERAL_STORAGE,
            },
        }
        persistence = {"enabled": True, "size": f"{redis.storage_gi}Gi"}
        k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE,
            namespace=ns,
            **pinned_chart("redis"),
            values={
                "architecture": "replication",
                "auth": {
                    "enabled": True,
                    "existingSecret": "redis-auth",
                    "existingSecretPasswordKey": "redis-password",
                },
                # AOF: an accepted task survives a Redis restart; the stack's fsync policy
                # bounds what a host crash can lose (redis.appendfsync).
                "commonConfiguration": f"appendonly yes\nappendfsync {cfg.redis.appendfsync}\n"
                if redis.append_only
                else "appendonly no\n",
                "master": {"persistence": persistence, "resources": resources},
                "replica": {
                    "replicaCount": redis.replicas,
                    "persistence": persistence,
                    "resources": resources,
                },
                "sentinel": {"enabled": redis.sentinel, "masterSet": SENTINEL_MASTER},
                "metrics": {"enabled": True, "serviceMonitor": {"enabled": cfg.monitoring.enabled}},
                "networkPolicy": {"enabled": False},  # the namespaces layer owns the policies
            },
            atomic=True,
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[*args.depends_on, secret]
            ),
        )
        host = f"{RELEASE}.{ns}.svc.cluster.local"
        if redis.sentinel:
            return pulumi.Output.from_input(
                f"redis+sentinel://{host}:{SENTINEL_PORT}/{SENTINEL_MASTER}/0"
            )
        return pulumi.Output.from_input(
            f"redis://{RELEASE}-master.{ns}.svc.cluster.local:{ports.REDIS}/0"
        )

    def _elasticache(
        self,
        name: str,
        cfg: PlatformConfig,
        placement: AwsPlacement,
        password: random.RandomPassword,
    ) -> pulumi.Output[str]:
        ec = cfg.redis.elasticache
        tags = placement.tagging
        child = pulumi.ResourceOptions(parent=self)
        subnets = aws.elasticache.SubnetGroup(
            f"{name}-subnets",
            description="private subnets of the agent platform",
            subnet_ids=list(placement.private_subnet_ids),
            tags=tags(f"{name}-subnets"),
            opts=child,
        )
        group = placement.nodes_only(
            name, ports.REDIS, "Redis from the EKS nodes only", "EKS nodes", self
        )
        key = rotating_key(
            f"{name}-at-rest",
            "ElastiCache encryption at rest for the agent platform",
            tags,
            f"{name}-at-rest",
            self,
        )
        replication = aws.elasticache.ReplicationGroup(
            f"{name}-redis",
            description="agent platform queues and usage ledger",
            engine="redis",
            engine_version=ec.engine_version,
            node_type=ec.node_type,
            **_shape(ec),
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            kms_key_id=key.arn,
            auth_token=password.result,
            port=ports.REDIS,
            subnet_group_name=subnets.name,
            security_group_ids=[group.id],
            snapshot_retention_limit=ec.snapshot_retention_days,
            apply_immediately=False,
            tags=tags(f"{name}-redis"),
            opts=child,
        )
        if ec.cluster_mode:
            # The configuration endpoint: the runtime learns the shards from it.
            self.elasticache_endpoint = replication.configuration_endpoint_address
            return pulumi.Output.concat(
                "rediss+cluster://", replication.configuration_endpoint_address, f":{ports.REDIS}"
            )
        self.elasticache_endpoint = replication.primary_endpoint_address
        return pulumi.Output.concat(
            "rediss://", replication.primary_endpoint_address, f":{ports.REDIS}/0"
        )


def _shape(ec: ElastiCacheConfig) -> dict[str, object]:
    """Cluster mode: shards and replicas per shard; otherwise one primary and its replicas."""
    if ec.cluster_mode:
        return {
            "cluster_mode": "enabled",
            "parameter_group_name": f"default.redis{ec.engine_version.split('.')[0]}.cluster.on",
            "num_node_groups": ec.num_node_groups,
            "replicas_per_node_group": ec.replicas_per_node_group,
        }
    return {"num_cache_clusters": ec.num_cache_clusters}
