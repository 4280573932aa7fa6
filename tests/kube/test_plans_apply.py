"""Every stack's rendered manifests, applied for real to a fresh Kubernetes control plane.

Per stack (they share namespace names, so each gets its own etcd + kube-apiserver +
kube-controller-manager): server-side apply of every object of a built-in API group with strict
field validation, in dependency order; the controllers turn each Deployment into a ReplicaSet and
pods, which the API server admits under the namespace's Pod Security level, its LimitRange
defaults and its ResourceQuota. Without a kubelet the pods stay Pending. A second apply must be a
no-op. Objects of kinds served only by a CustomResourceDefinition are reported, not applied.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from kubernetes.dynamic import DynamicClient

from infra.plan.document import Plan
from tests.kube.apply import (
    CRD_CHARTS,
    REPORT,
    WORKLOAD_KINDS,
    Manifest,
    NotApplied,
    apply,
    builtin_group,
    by_kind,
    dynamic_client,
    helm_releases,
    load_manifests,
    resource_for,
)
from tests.kubeapi import ControlPlane, control_plane
from tests.stacks import STACKS
from tests.waiting import eventually

POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce"


@dataclass
class Pods:
    namespace: str
    level: str
    replicas: int
    names: list[str]
    phases: list[str]
    owners: list[str]


@dataclass
class StackApply:
    """What happened when one stack's manifests were applied (the tests assert on it)."""

    stack: str
    plane: ControlPlane
    plan: Plan
    manifests: list[Manifest]
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    not_applied: list[NotApplied] = field(default_factory=list)
    pods: dict[str, Pods] = field(default_factory=dict)
    failed_create: list[str] = field(default_factory=list)
    second_apply: dict[str, tuple[str, str]] = field(default_factory=dict)


def _message(err: kubernetes.client.ApiException | Exception) -> str:
    body = getattr(err, "body", None)
    try:
        return str(json.loads(body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(err)


def _namespaces_ready(client: DynamicClient, result: StackApply) -> None:
    """What the controllers do for a new namespace before it takes pods: its `default` service
    account exists and each ResourceQuota has computed usage (until then the ResourceQuota
    admission refuses every pod with "status unknown for quota")."""
    core = kubernetes.client.CoreV1Api(client.client)
    for manifest in result.manifests:
        if manifest.ref not in result.applied:
            continue
        if manifest.kind == "Namespace":
            eventually(
                f"service account default in {manifest.name}",
                lambda ns=manifest.name: (
                    core.list_namespaced_service_account(
                        ns, field_selector="metadata.name=default"
                    ).items
                    or None
                ),
            )
        if manifest.kind == "ResourceQuota":

            def computed(m: Manifest = manifest) -> bool | None:
                quota = core.read_namespaced_resource_quota(m.name, str(m.namespace))
                hard = (quota.status and quota.status.hard) or {}
                return True if set(hard) == set(m.body["spec"]["hard"]) else None

            eventually(f"usage of {manifest.ref}", computed)


def _apply_all(client: DynamicClient, result: StackApply, releases: dict[str, str]) -> None:
    namespaces_ready = False
    for manifest in result.manifests:
        resource = resource_for(client, manifest)
        if resource is None:
            if builtin_group(manifest.group):
                result.errors[manifest.ref] = f"{manifest.api_version} is not served"
            else:
                chart = CRD_CHARTS.get(manifest.group)
                source = releases.get(chart or "", "no Helm release of the plan")
                result.not_applied.append(
                    NotApplied(
                        manifest,
                        f"{manifest.group} is served only by a CustomResourceDefinition, "
                        f"installed by the chart {source}; Helm charts are not rendered offline",
                    )
                )
            continue
        if manifest.kind in WORKLOAD_KINDS and not namespaces_ready:
            _namespaces_ready(client, result)
            namespaces_ready = True
        try:
            result.applied[manifest.ref] = apply(client, resource, manifest.body)
        except kubernetes.client.ApiException as err:
            result.errors[manifest.ref] = _message(err)


def _deployment_pods(core: kubernetes.client.CoreV1Api, manifest: Manifest) -> Pods | None:
    namespace = str(manifest.namespace)
    spec = manifest.body["spec"]
    replicas = int(spec.get("replicas", 1))
    selector = ",".join(f"{k}={v}" for k, v in sorted(spec["selector"]["matchLabels"].items()))
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    if len(pods) < replicas:
        return None
    level = core.read_namespace(namespace).metadata.labels.get(POD_SECURITY_ENFORCE, "")
    return Pods(
        namespace=namespace,
        level=level,
        replicas=replicas,
        names=sorted(p.metadata.name for p in pods),
        phases=sorted(p.status.phase for p in pods),
        owners=sorted(
            f"{o.kind}/{o.name}" for p in pods for o in (p.metadata.owner_references or [])
        ),
    )


def _failed_creates(core: kubernetes.client.CoreV1Api, namespaces: set[str]) -> list[str]:
    return [
        f"{e.involved_object.kind} {ns}/{e.involved_object.name}: {e.message}"
        for ns in sorted(namespaces)
        for e in core.list_namespaced_event(ns, field_selector="reason=FailedCreate").items
    ]


def _settle(client: DynamicClient, result: StackApply) -> None:
    """Waits for every Deployment's pods (or a FailedCreate) and for the Deployment controller
    to have recorded them, so the second apply meets a quiet cluster."""
    core = kubernetes.client.CoreV1Api(client.client)
    apps = kubernetes.client.AppsV1Api(client.client)
    deployments = [
        m for m in result.manifests if m.kind == "Deployment" and m.ref in result.applied
    ]
    namespaces = {str(m.namespace) for m in deployments}
    for manifest in deployments:

        def ready(m: Manifest = manifest) -> bool | None:
            if _failed_creates(core, namespaces):
                return True
            pods = _deployment_pods(core, m)
            if pods is None:
                return None
            status = apps.read_namespaced_deployment_status(m.name, str(m.namespace))
            if status.status.observed_generation != status.metadata.generation:
                return None
            if (status.status.replicas or 0) != pods.replicas:
                return None
            result.pods[m.ref] = pods
            return True

        with contextlib.suppress(AssertionError):  # the pod test reports what is missing
            eventually(f"pods of {manifest.ref}", ready)
    result.failed_create = _failed_creates(core, namespaces)


def _apply_again(client: DynamicClient, result: StackApply) -> None:
    for manifest in result.manifests:
        if manifest.ref not in result.applied:
            continue
        resource = resource_for(client, manifest)
        assert resource is not None
        stored = client.get(resource, name=manifest.name, namespace=manifest.namespace)
        before = str(stored.metadata.resourceVersion)
        try:
            after = str(apply(client, resource, manifest.body)["metadata"]["resourceVersion"])
        except kubernetes.client.ApiException as err:
            after = f"refused: {_message(err)}"
        result.second_apply[manifest.ref] = (before, after)


def _report(result: StackApply) -> list[str]:
    applied = [m for m in result.manifests if m.ref in result.applied]
    lines = [
        f"{result.stack}: Kubernetes {result.plane.version}, {len(result.manifests)} manifests, "
        f"{len(applied)} applied, {len(result.errors)} refused, "
        f"{len(result.not_applied)} not applied",
        "  applied: " + ", ".join(f"{k} {n}" for k, n in by_kind(applied).items()),
    ]
    levels = sorted({(p.namespace, p.level) for p in result.pods.values()})
    pods = sum(len(p.names) for p in result.pods.values())
    lines.append(
        f"  pods admitted (Pending, no kubelet): {pods} for {len(result.pods)} Deployments "
        f"under " + ", ".join(f"{ns}={level}" for ns, level in levels)
    )
    reasons: dict[str, list[Manifest]] = {}
    for item in result.not_applied:
        reasons.setdefault(item.reason, []).append(item.manifest)
    for reason, manifests in sorted(reasons.items()):
        kinds = ", ".join(f"{k} {n}" for k, n in by_kind(manifests).items())
        lines.append(f"  not applied: {kinds}: {reason}")
    releases = helm_releases(result.plan)
    lines.append(
        f"  not applied: {len(releases)} Helm releases ("
        + ", ".join(sorted(releases))
        + "): charts are not rendered offline"
    )
    for ref, message in sorted(result.errors.items()):
        lines.append(f"  REFUSED {ref}: {message}")
    return lines


@pytest.fixture(scope="module", params=STACKS)
def stack_apply(
    request: pytest.FixtureRequest,
    plan_dirs: dict[str, Path],
    plans: dict[str, Plan],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StackApply]:
    stack: str = request.param
    directory = tmp_path_factory.mktemp(f"kube-{stack}")
    with control_plane(directory) as plane, plane.api_client() as api:
        client = dynamic_client(api, directory)
        result = StackApply(stack, plane, plans[stack], load_manifests(plan_dirs[stack]))
        _apply_all(client, result, helm_releases(result.plan))
        _settle(client, result)
        _apply_again(client, result)
        request.config.stash[REPORT].extend(_report(result))
        yield result


def test_the_api_server_accepts_every_builtin_object(stack_apply: StackApply) -> None:
    assert stack_apply.errors == {}
    builtin = [m for m in stack_apply.manifests if builtin_group(m.group)]
    assert builtin, "the plan renders no Kubernetes objects"
    assert sorted(stack_apply.applied) == sorted(m.ref for m in builtin)
    # What the server stored is what the plan rendered (no field dropped or renamed).
    for manifest in builtin:
        stored = stack_apply.applied[manifest.ref]
        assert stored["kind"] == manifest.kind
        assert stored["metadata"]["name"] == manifest.name
        for key, value in (manifest.body["metadata"].get("labels") or {}).items():
            assert stored["metadata"]["labels"][key] == value, manifest.ref


def test_every_namespace_enforces_a_pod_security_level(stack_apply: StackApply) -> None:
    namespaces = [m for m in stack_apply.manifests if m.kind == "Namespace"]
    assert namespaces
    for manifest in namespaces:
        labels = stack_apply.applied[manifest.ref]["metadata"]["labels"]
        assert labels[POD_SECURITY_ENFORCE] in {"restricted", "baseline", "privileged"}
        assert labels[f"{POD_SECURITY_ENFORCE}-version"].startswith("v1.")


def test_each_deployment_creates_its_pods_under_pod_security(stack_apply: StackApply) -> None:
    assert stack_apply.failed_create == []
    deployments = [m for m in stack_apply.manifests if m.kind == "Deployment"]
    assert deployments
    for manifest in deployments:
        pods = stack_apply.pods.get(manifest.ref)
        assert pods is not None, f"no pods for {manifest.ref}"
        assert len(pods.names) == pods.replicas
        # Created by the Deployment's ReplicaSet, admitted, never run: no kubelet.
        assert all(o.startswith(f"ReplicaSet/{manifest.name}-") for o in pods.owners)
        assert set(pods.phases) == {"Pending"}
        # The platform's own workloads are all admitted at the strictest level.
        assert pods.level == "restricted", manifest.ref


def test_a_second_apply_changes_nothing(stack_apply: StackApply) -> None:
    assert stack_apply.second_apply
    changed = {ref: rv for ref, rv in stack_apply.second_apply.items() if rv[0] != rv[1]}
    assert changed == {}


def test_crd_kinds_are_reported_with_the_chart_that_defines_them(stack_apply: StackApply) -> None:
    releases = helm_releases(stack_apply.plan)
    for item in stack_apply.not_applied:
        chart = CRD_CHARTS.get(item.manifest.group)
        assert chart is not None, f"{item.manifest.ref}: which chart defines {item.manifest.group}?"
        assert chart in releases, f"{item.manifest.ref} needs chart {chart}, not in the plan"
    if stack_apply.stack in {"staging", "prod"}:
        groups = {i.manifest.group for i in stack_apply.not_applied}
        assert groups == set(CRD_CHARTS)
