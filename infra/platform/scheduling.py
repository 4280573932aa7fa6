"""Where pods land: node roles, the GPU node group's taints and the autoscaler's tags.

One definition for the facts the cluster layer (labels, taints and tags of node groups), the
agent pools (node selector, tolerations, GPU requests) and the scaling layer (device plugin,
cluster autoscaler) must agree on.
"""

from __future__ import annotations

from typing import Final

from contracts.config import ClusterConfig, NodeGroupConfig, NodeGroupRole, TaintConfig

__all__ = [
    "AUTOSCALER_SERVICE_ACCOUNT",
    "GPU_RESOURCE",
    "GPU_TAINT",
    "NODE_ROLE_LABEL",
    "autoscaler_tags",
    "gpu_node_groups",
    "gpu_tolerations",
    "node_taints",
    "role_tolerations",
    "toleration",
]

NODE_ROLE_LABEL: Final = "agentops.io/node-role"
# The extended resource the NVIDIA device plugin advertises and pods request.
GPU_RESOURCE: Final = "nvidia.com/gpu"
# Added to every GPU node group that does not taint itself on this key: only pods that ask for
# a GPU land on GPU nodes.
GPU_TAINT: Final = TaintConfig(key=GPU_RESOURCE, value="true", effect="NO_SCHEDULE")
# EKS spells taint effects in upper snake case, Kubernetes in camel case.
_EFFECTS: Final = {
    "NO_SCHEDULE": "NoSchedule",
    "NO_EXECUTE": "NoExecute",
    "PREFER_NO_SCHEDULE": "PreferNoSchedule",
}


def node_taints(group: NodeGroupConfig) -> list[TaintConfig]:
    """The taints a node group's nodes carry: the configured ones, plus the GPU taint."""
    taints = list(group.taints)
    if group.role is NodeGroupRole.GPU and all(t.key != GPU_TAINT.key for t in taints):
        taints.append(GPU_TAINT)
    return taints


def toleration(taint: TaintConfig) -> dict[str, str]:
    """The Kubernetes toleration of exactly one node taint."""
    return {
        "key": taint.key,
        "operator": "Equal",
        "value": taint.value,
        "effect": _EFFECTS[taint.effect],
    }


def gpu_node_groups(cluster: ClusterConfig | None) -> list[NodeGroupConfig]:
    if cluster is None:
        return []
    return [g for g in cluster.node_groups if g.role is NodeGroupRole.GPU]


def role_tolerations(cluster: ClusterConfig | None, role: NodeGroupRole) -> list[dict[str, str]]:
    """Tolerations a pod needs to run on every node group of `role` in the cluster."""
    found: list[dict[str, str]] = []
    groups = cluster.node_groups if cluster is not None else []
    for group in (g for g in groups if g.role is role):
        for taint in node_taints(group):
            t = toleration(taint)
            if t not in found:
                found.append(t)
    return found


def gpu_tolerations(cluster: ClusterConfig | None) -> list[dict[str, str]]:
    """Tolerations a pod needs to run on every GPU node group of the cluster."""
    return role_tolerations(cluster, NodeGroupRole.GPU)


# The cluster autoscaler's ServiceAccount in kube-system (its IRSA role and its flows name it).
AUTOSCALER_SERVICE_ACCOUNT: Final = "cluster-autoscaler"


def autoscaler_tags(cluster_name: str) -> dict[str, str]:
    """The tags by which the cluster autoscaler discovers a node group, and on which its IAM
    role's scaling rights are conditioned."""
    return {
        "k8s.io/cluster-autoscaler/enabled": "true",
        f"k8s.io/cluster-autoscaler/{cluster_name}": "owned",
    }
