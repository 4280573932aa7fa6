"""Scaling that has data and room: metrics-server, the cluster autoscaler, the GPU device plugin.

The HPAs of the agent pools read CPU and memory from metrics-server (and the queue length
from prometheus-adapter, in the monitoring layer). The node groups' sizes belong to the
cluster autoscaler, which finds them by the tags the cluster layer puts on them and may scale
nothing else: its IAM role is conditioned on those tags and names the node groups. The NVIDIA
device plugin runs only on the GPU node groups and advertises `nvidia.com/gpu`
(`infra.platform.scheduling.GPU_RESOURCE`) there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from contracts import versions
from contracts.config import Environment, NodeGroupRole, PlatformConfig
from infra.layers.irsa import OidcIdentity, policy_role
from infra.layers.shared import pinned_chart
from infra.layers.tagging import Tagging
from infra.platform.scheduling import (
    AUTOSCALER_SERVICE_ACCOUNT,
    NODE_ROLE_LABEL,
    autoscaler_tags,
    gpu_node_groups,
    role_tolerations,
)
from infra.platform.workloads import LOGS_EPHEMERAL_STORAGE

__all__ = [
    "AUTOSCALER_SERVICE_ACCOUNT",
    "AwsScaling",
    "Scaling",
    "ScalingArgs",
    "autoscaler_policy",
    "system_addon_placement",
]

# Cluster add-ons live where Kubernetes keeps its own (CoreDNS, kube-proxy, vpc-cni).
ADDON_NAMESPACE: Final = "kube-system"
# Read-only calls the autoscaler makes to learn the groups and instance shapes; AWS supports
# no resource-level permission on them.
_DESCRIBE: Final = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
)
# The only writes: change a group's desired size, remove one of its instances.
_SCALE: Final = (
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
)


def _resources(cpu: str, memory: str, memory_limit: str) -> dict[str, dict[str, str]]:
    return {
        "requests": {"cpu": cpu, "memory": memory, "ephemeral-storage": LOGS_EPHEMERAL_STORAGE},
        "limits": {"memory": memory_limit, "ephemeral-storage": LOGS_EPHEMERAL_STORAGE},
    }


def autoscaler_policy(cluster_name: str, region: str, groups: Mapping[str, str]) -> dict[str, Any]:
    """The autoscaler's IAM policy: scale exactly the cluster's node groups (`groups`: config
    name → node group ARN), read their labels and taints (scale-from-zero), describe the rest.

    EKS names a managed node group's Auto Scaling group `eks-<node group name>-<uuid>`, and the
    cluster layer names node groups `<cluster>-<group>-<suffix>`; EKS tags those Auto Scaling
    groups with the autoscaler's discovery tags, which the scaling rights also require.
    """
    asgs = [
        f"arn:aws:autoscaling:{region}:*:autoScalingGroup:*:"
        f"autoScalingGroupName/eks-{cluster_name}-{name}-*"
        for name in sorted(groups)
    ]
    tags = {f"aws:ResourceTag/{k}": v for k, v in autoscaler_tags(cluster_name).items()}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ScaleOwnNodeGroups",
                "Effect": "Allow",
                "Action": list(_SCALE),
                "Resource": asgs,
                "Condition": {"StringEquals": tags},
            },
            {
                "Sid": "ReadOwnNodeGroups",
                "Effect": "Allow",
                "Action": ["eks:DescribeNodegroup"],
                "Resource": [groups[name] for name in sorted(groups)],
            },
            {
                "Sid": "Describe",
                "Effect": "Allow",
                "Action": list(_DESCRIBE),
                "Resource": "*",
            },
        ],
    }


def system_addon_placement(cfg: PlatformConfig) -> dict[str, Any]:
    """Node selector and tolerations that put a cluster add-on on the system node group."""
    if cfg.cluster is None:
        return {}
    return {
        "nodeSelector": {NODE_ROLE_LABEL: NodeGroupRole.SYSTEM.value},
        "tolerations": role_tolerations(cfg.cluster, NodeGroupRole.SYSTEM),
    }


@dataclass(frozen=True)
class AwsScaling:
    """What the cluster autoscaler needs from the AWS layers."""

    region: str
    node_group_arns: Mapping[str, pulumi.Output[str]]
    oidc: OidcIdentity
    tagging: Tagging


@dataclass(frozen=True)
class ScalingArgs:
    config: PlatformConfig
    provider: k8s.Provider
    depends_on: list[pulumi.Resource]
    # None on the local stack: its cluster's nodes are not ours to scale.
    aws: AwsScaling | None


class Scaling(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: ScalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Scaling", name, None, opts)
        cfg = args.config
        inside = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=args.depends_on
        )
        self._metrics_server(name, cfg, inside)
        if args.aws is not None:
            self._cluster_autoscaler(name, cfg, args.aws, inside)
        if gpu_node_groups(cfg.cluster):
            self._device_plugin(name, cfg, inside)
        self.register_outputs({})

    def _metrics_server(self, name: str, cfg: PlatformConfig, opts: pulumi.ResourceOptions) -> None:
        replicas = 2 if cfg.environment is Environment.PROD else 1
        values: dict[str, Any] = {
            "replicas": replicas,
            "podDisruptionBudget": {"enabled": replicas > 1, "maxUnavailable": 1},
            "resources": _resources("100m", "200Mi", "400Mi"),
            **system_addon_placement(cfg),
        }
        if cfg.cluster is None:
            # kind and k3d kubelets serve self-signed certificates.
            values["args"] = ["--kubelet-insecure-tls"]
        k8s.helm.v3.Release(
            f"{name}-metrics-server",
            name="metrics-server",
            namespace=ADDON_NAMESPACE,
            values=values,
            **pinned_chart("metrics-server"),
            opts=opts,
        )

    def _cluster_autoscaler(
        self, name: str, cfg: PlatformConfig, aws: AwsScaling, opts: pulumi.ResourceOptions
    ) -> None:
        assert cfg.cluster is not None
        cluster = cfg.cluster.name
        arns = dict(aws.node_group_arns)
        policy = pulumi.Output.all(*arns.values()).apply(
            lambda resolved: json.dumps(
                autoscaler_policy(cluster, aws.region, dict(zip(arns, resolved, strict=True))),
                sort_keys=True,
            )
        )
        role = policy_role(
            f"{name}-cluster-autoscaler-irsa",
            aws.oidc,
            (ADDON_NAMESPACE, AUTOSCALER_SERVICE_ACCOUNT),
            policy,
            aws.tagging(f"{cluster}-cluster-autoscaler"),
            self,
        )
        pinned = versions.for_minor(cfg.kubernetes_version)
        k8s.helm.v3.Release(
            f"{name}-cluster-autoscaler",
            name="cluster-autoscaler",
            namespace=ADDON_NAMESPACE,
            chart="cluster-autoscaler",
            version=pinned.cluster_autoscaler_chart,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=versions.CLUSTER_AUTOSCALER_CHARTS),
            values={
                "cloudProvider": "aws",
                "awsRegion": aws.region,
                # Finds the node groups by their tags and scales each within its minSize and
                # maxSize (the Auto Scaling group's bounds, set from the node group's config).
                "autoDiscovery": {"clusterName": cluster, "tags": sorted(autoscaler_tags(cluster))},
                "image": {"tag": pinned.cluster_autoscaler_image},
                "rbac": {
                    "serviceAccount": {
                        "create": True,
                        "name": AUTOSCALER_SERVICE_ACCOUNT,
                        "annotations": {"eks.amazonaws.com/role-arn": role.role_arn},
                    }
                },
                "extraArgs": {
                    "balance-similar-node-groups": True,
                    "expander": "least-waste",
                    # Pods with emptyDirs (every runtime pod has /tmp) may move on scale-down.
                    "skip-nodes-with-local-storage": False,
                },
                "resources": _resources("100m", "300Mi", "600Mi"),
                **system_addon_placement(cfg),
            },
            opts=opts,
        )

    def _device_plugin(self, name: str, cfg: PlatformConfig, opts: pulumi.ResourceOptions) -> None:
        gpu = NodeGroupRole.GPU.value
        k8s.helm.v3.Release(
            f"{name}-nvidia-device-plugin",
            name="nvidia-device-plugin",
            namespace=ADDON_NAMESPACE,
            values={
                # Only on GPU nodes: the chart's default affinity (NFD labels) is replaced.
                "nodeSelector": {NODE_ROLE_LABEL: gpu},
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": NODE_ROLE_LABEL, "operator": "In", "values": [gpu]}
                                    ]
                                }
                            ]
                        }
                    }
                },
                "tolerations": role_tolerations(cfg.cluster, NodeGroupRole.GPU),
                "resources": _resources("50m", "64Mi", "128Mi"),
            },
            **pinned_chart("nvidia-device-plugin"),
            opts=opts,
        )
