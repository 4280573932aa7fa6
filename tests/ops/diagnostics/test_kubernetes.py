"""The Kubernetes probe against the real control plane (tests/kubeapi.py) with the staging
plan's namespaces, service accounts, NetworkPolicies and Deployments applied.

There is no kubelet: the controllers create each Deployment's pods and they stay Pending, so
the doctor must report every Deployment as having no available pod. One test then writes a
pod's Ready status as a kubelet would, and the Deployment controller's own arithmetic makes
that Deployment partially, then fully available.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import kubernetes.client
import pytest
from kubernetes.dynamic import DynamicClient

from ops.diagnostics import Check, Status
from ops.diagnostics.platform import DEFAULT_DENY, PlatformExpectations
from ops.diagnostics.probes.kubernetes import kubernetes_checks
from tests.kube.apply import Manifest, apply, dynamic_client, load_manifests, resource_for
from tests.kubeapi import ControlPlane
from tests.stacks import run_plan
from tests.waiting import eventually

KINDS = ("Namespace", "LimitRange", "NetworkPolicy", "ServiceAccount", "Deployment")


@pytest.fixture(scope="module")
def applied(
    kube: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DynamicClient, list[Manifest]]]:
    out = tmp_path_factory.mktemp("staging-plan")
    proc = run_plan("staging", out)
    assert proc.returncode == 0, proc.stderr
    manifests = [m for m in load_manifests(out) if m.kind in KINDS]
    with kube.api_client() as api:
        client = dynamic_client(api, out)
        for manifest in manifests:
            resource = resource_for(client, manifest)
            assert resource is not None, manifest.ref
            apply(client, resource, manifest.body)
        yield client, manifests


def _checks(kube: ControlPlane, expect: PlatformExpectations) -> dict[str, Check]:
    return {c.name: c for c in kubernetes_checks(expect, kube.kubeconfig, None, 10)}


def _restore(client: DynamicClient, manifests: list[Manifest], kind: str, name: str) -> None:
    for manifest in manifests:
        if manifest.kind == kind and manifest.name == name:
            resource = resource_for(client, manifest)
            assert resource is not None
            apply(client, resource, manifest.body)


def test_deployments_without_ready_pods_are_never_healthy(
    kube: ControlPlane,
    applied: tuple[DynamicClient, list[Manifest]],
    staging_expect: PlatformExpectations,
) -> None:
    checks = _checks(kube, staging_expect)
    assert checks["kubernetes.api"].status is Status.HEALTHY
    assert checks["kubernetes.api"].value == kube.version
    apps = kubernetes.client.AppsV1Api(applied[0].client)
    for expected in staging_expect.deployments:
        check = checks[f"kubernetes.deployment/{expected.ref}"]
        desired = apps.read_namespaced_deployment(expected.name, expected.namespace).spec.replicas
        assert check.status is Status.CRITICAL, check
        assert check.value == f"0/{desired}"
        assert "no available pod" in check.detail and check.advice
    for namespace in staging_expect.namespaces:
        policies = checks[f"kubernetes.networkpolicies/{namespace}"]
        assert policies.status is Status.HEALTHY, policies
        wanted = len(staging_expect.network_policies[namespace])
        assert policies.value == f"{wanted}/{wanted}"


def test_missing_network_policies_and_a_missing_deployment(
    kube: ControlPlane,
    applied: tuple[DynamicClient, list[Manifest]],
    staging_expect: PlatformExpectations,
) -> None:
    client, manifests = applied
    net = kubernetes.client.NetworkingV1Api(client.client)
    apps = kubernetes.client.AppsV1Api(client.client)
    platform, agents = staging_expect.namespaces[:2]
    net.delete_namespaced_network_policy(DEFAULT_DENY, platform)
    dns = f"out-dns-udp-{agents}"  # one allow of the flow table (infra/platform/flows.py)
    net.delete_namespaced_network_policy(dns, agents)
    cost = next(d for d in staging_expect.deployments if d.service == "cost-engine")
    apps.delete_namespaced_deployment(cost.name, cost.namespace)
    try:
        checks = eventually(
            "the deletions seen by the doctor",
            lambda: (
                c
                if (c := _checks(kube, staging_expect))[f"kubernetes.deployment/{cost.ref}"].detail
                == "the Deployment does not exist"
                else None
            ),
        )
        no_deny = checks[f"kubernetes.networkpolicies/{platform}"]
        assert no_deny.status is Status.CRITICAL and DEFAULT_DENY in no_deny.detail
        no_dns = checks[f"kubernetes.networkpolicies/{agents}"]
        assert no_dns.status is Status.WARNING and dns in no_dns.detail
        assert checks[f"kubernetes.deployment/{cost.ref}"].status is Status.CRITICAL
    finally:
        _restore(client, manifests, "NetworkPolicy", DEFAULT_DENY)
        _restore(client, manifests, "NetworkPolicy", dns)
        _restore(client, manifests, "Deployment", cost.name)
    restored = _checks(kube, staging_expect)
    assert restored[f"kubernetes.networkpolicies/{platform}"].status is Status.HEALTHY
    assert restored[f"kubernetes.networkpolicies/{agents}"].status is Status.HEALTHY


def _mark_ready(core: kubernetes.client.CoreV1Api, pod: kubernetes.client.V1Pod) -> None:
    """What a kubelet reports once the containers pass their readiness probes."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [
        {"type": kind, "status": "True", "lastTransitionTime": now}
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    core.patch_namespaced_pod_status(
        pod.metadata.name,
        pod.metadata.namespace,
        {"status": {"phase": "Running", "conditions": conditions, "startTime": now}},
    )


def test_ready_pods_make_a_deployment_available_through_the_controller(
    kube: ControlPlane,
    applied: tuple[DynamicClient, list[Manifest]],
    staging_expect: PlatformExpectations,
) -> None:
    client, _ = applied
    core = kubernetes.client.CoreV1Api(client.client)
    apps = kubernetes.client.AppsV1Api(client.client)
    manager = staging_expect.deployments[0]
    deployment = apps.read_namespaced_deployment(manager.name, manager.namespace)
    desired = deployment.spec.replicas
    assert desired >= 2, "the staging manager runs several replicas"
    selector = ",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())

    def pods() -> list[kubernetes.client.V1Pod] | None:
        found = core.list_namespaced_pod(manager.namespace, label_selector=selector).items
        return found if len(found) >= desired else None

    created = eventually(f"{desired} pods of {manager.ref}", pods)
    name = f"kubernetes.deployment/{manager.ref}"

    def status_is(status: Status) -> dict[str, Check] | None:
        checks = _checks(kube, staging_expect)
        return checks if checks[name].status is status else None

    try:
        _mark_ready(core, created[0])
        partial = eventually("one available replica", lambda: status_is(Status.WARNING))[name]
        assert partial.value == f"1/{desired}"
        for pod in created[1:]:
            _mark_ready(core, pod)
        healthy = eventually("every replica available", lambda: status_is(Status.HEALTHY))[name]
        assert healthy.value == f"{desired}/{desired}"
        assert healthy.advice is None
    finally:
        # Back to what the plan alone gives: the ReplicaSet replaces them with Pending pods.
        for pod in created:
            core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
    eventually("the manager unavailable again", lambda: status_is(Status.CRITICAL))
