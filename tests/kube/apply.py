"""Server-side apply of rendered manifests, in dependency order, through the `kubernetes` client."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from kubernetes.dynamic.resource import Resource

from infra.plan.document import Plan

__all__ = [
    "APPLY_ORDER",
    "CRD_CHARTS",
    "FIELD_MANAGER",
    "REPORT",
    "Manifest",
    "NotApplied",
    "apply",
    "builtin_group",
    "by_kind",
    "dynamic_client",
    "helm_releases",
    "load_manifests",
]

FIELD_MANAGER = "agentops-tests"
# Lines of the apply report, printed in pytest's terminal summary (tests/kube/conftest.py).
REPORT = pytest.StashKey[list[str]]()

# What must exist before what: a namespace before anything in it; its quota, default limits
# and network policies before the first pod (LimitRange defaults are filled in when a pod is
# admitted, and a pod must never run unprotected); identities and configuration before the
# workloads that mount them; workloads before what points at them. Unknown kinds go last.
APPLY_ORDER = (
    "Namespace",
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy",
    "ServiceAccount",
    "ClusterRole",
    "Role",
    "ClusterRoleBinding",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
)
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})

# API groups of the plans that only a CustomResourceDefinition serves, and the chart (one of the
# plan's Helm releases) that installs that definition on a real cluster.
CRD_CHARTS = {
    "networking.istio.io": "base",
    "security.istio.io": "base",
    "telemetry.istio.io": "base",
    "monitoring.coreos.com": "kube-prometheus-stack",
}
_BUILTIN_GROUPS = frozenset({"", "apps", "autoscaling", "batch", "policy"})


def builtin_group(group: str) -> bool:
    """Groups the API server itself serves (core, apps, ..., *.k8s.io)."""
    return group in _BUILTIN_GROUPS or group.endswith(".k8s.io")


@dataclass(frozen=True)
class Manifest:
    path: Path
    body: dict[str, Any]

    @property
    def api_version(self) -> str:
        return str(self.body["apiVersion"])

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        namespace = self.body["metadata"].get("namespace")
        return str(namespace) if namespace else None

    @property
    def ref(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    def rank(self) -> tuple[int, str, str]:
        order = APPLY_ORDER.index(self.kind) if self.kind in APPLY_ORDER else len(APPLY_ORDER)
        return order, self.namespace or "", self.name


@dataclass(frozen=True)
class NotApplied:
    manifest: Manifest
    reason: str


def load_manifests(plan_dir: Path) -> list[Manifest]:
    """Every rendered object of a plan directory (`manifests/**.yaml`), in apply order."""
    manifests = [
        Manifest(path, yaml.safe_load(path.read_text()))
        for path in sorted((plan_dir / "manifests").rglob("*.yaml"))
    ]
    return sorted(manifests, key=Manifest.rank)


def helm_releases(plan: Plan) -> dict[str, str]:
    """The plan's Helm releases: chart -> `chart version (repository)`."""
    releases = {}
    for resource in plan.resources:
        if resource.type == "kubernetes:helm.sh/v3:Release":
            inputs = resource.inputs
            repo = (inputs.get("repositoryOpts") or {}).get("repo", "")
            releases[str(inputs["chart"])] = f"{inputs['chart']} {inputs.get('version')} ({repo})"
    return releases


def dynamic_client(api_client: kubernetes.client.ApiClient, cache_dir: Path) -> DynamicClient:
    # Discovery is cached per client; keep the cache with the control plane, not in /tmp.
    return DynamicClient(api_client, cache_file=str(cache_dir / "discovery.json"))


def resource_for(client: DynamicClient, manifest: Manifest) -> Resource | None:
    """The served resource of a manifest's kind, None when the API server does not serve it."""
    try:
        resource: Resource = client.resources.get(
            api_version=manifest.api_version, kind=manifest.kind
        )
    except ResourceNotFoundError:
        return None
    return resource


def apply(client: DynamicClient, resource: Resource, body: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply with strict field validation; the stored object as a dict."""
    applied = client.server_side_apply(
        resource,
        body=body,
        field_manager=FIELD_MANAGER,
        query_params=[("fieldValidation", "Strict")],
    )
    result: dict[str, Any] = applied.to_dict()
    return result


def by_kind(manifests: Iterable[Manifest]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for manifest in manifests:
        counts[manifest.kind] = counts.get(manifest.kind, 0) + 1
    return dict(sorted(counts.items()))
