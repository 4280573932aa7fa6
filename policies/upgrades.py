"""Upgrade safety: versions of control plane, add-ons and node groups agree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    ReportViolation,
    StackValidationArgs,
)

from contracts import versions
from policies.common import stack_policy

__all__ = ["POLICIES", "kubernetes_version_skew"]

# EKS supports nodes up to three minors older than the control plane (Kubernetes ≥ 1.28).
DEFAULT_MAX_NODE_SKEW = 3


def _minor(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, str):
        return None  # unknown during preview: nothing to judge yet
    parts = value.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def _validate_skew(args: StackValidationArgs, report: ReportViolation) -> None:
    config: Mapping[str, Any] = args.get_config()
    max_skew = int(config.get("maxNodeSkew", DEFAULT_MAX_NODE_SKEW))
    clusters = {
        r.props.get("name"): r
        for r in args.resources
        if r.resource_type == "aws:eks/cluster:Cluster"
    }
    for resource in args.resources:
        cluster = clusters.get(resource.props.get("clusterName"))
        if cluster is None:
            continue
        control = _minor(cluster.props.get("version"))
        if control is None:
            continue
        if resource.resource_type == "aws:eks/nodeGroup:NodeGroup":
            node = _minor(resource.props.get("version"))
            if node is None:
                continue
            if node > control:
                report(
                    f"node group {resource.name} runs Kubernetes {node[0]}.{node[1]}, newer than "
                    f"its control plane {control[0]}.{control[1]}: upgrade the control plane "
                    f"first (set version from the cluster's version output)",
                    resource.urn,
                )
            elif node[0] != control[0] or control[1] - node[1] > max_skew:
                report(
                    f"node group {resource.name} is at {node[0]}.{node[1]}, more than {max_skew} "
                    f"minors behind the control plane {control[0]}.{control[1]}: upgrade it",
                    resource.urn,
                )
        elif resource.resource_type == "aws:eks/addon:Addon":
            minor = f"{control[0]}.{control[1]}"
            if minor not in versions.VERSIONS:
                report(f"control plane {minor} has no entry in contracts/versions.py", cluster.urn)
                continue
            name = resource.props.get("addonName")
            expected = versions.VERSIONS[minor].addons.get(str(name))
            actual = resource.props.get("addonVersion")
            if expected is not None and isinstance(actual, str) and actual != expected:
                report(
                    f"add-on {name} is pinned to {actual} but Kubernetes {minor} needs {expected} "
                    f"(contracts/versions.py): take add-on versions from the version table",
                    resource.urn,
                )


kubernetes_version_skew = stack_policy(
    "kubernetes-version-skew",
    (
        "Node groups never run a newer Kubernetes minor than their control plane nor fall more "
        "than the allowed skew behind it, and every EKS add-on carries the version the version "
        "table pins for the control plane's minor."
    ),
    (
        "Change only cluster.kubernetesVersion in the stack file; the program derives node-group "
        "and add-on versions from it and contracts/versions.py."
    ),
    _validate_skew,
    config={
        "maxNodeSkew": {
            "type": "integer",
            "minimum": 0,
            "maximum": 3,
            "default": DEFAULT_MAX_NODE_SKEW,
            "description": "minors a node group may trail its control plane",
        }
    },
)

POLICIES = [kubernetes_version_skew]
