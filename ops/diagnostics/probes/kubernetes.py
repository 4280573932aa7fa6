"""Kubernetes probe: /version, the stack's Deployments, the NetworkPolicies per namespace."""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from ops.diagnostics.check import Check, Status
from ops.diagnostics.platform import ExpectedDeployment, PlatformExpectations
from ops.diagnostics.probes.errors import describe
from ops.diagnostics.rules.kubernetes import (
    DeploymentState,
    api_check,
    deployment_check,
    network_policy_check,
)

__all__ = ["kubernetes_checks"]


def _api_client(kubeconfig: Path | None, context: str | None) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None and context is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig) if kubeconfig is not None else None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    # One attempt: a down API server is reported at once, not after urllib3's retries.
    configuration.retries = 0
    return kubernetes.client.ApiClient(configuration)


def _state(deployment: kubernetes.client.V1Deployment) -> DeploymentState:
    spec, status, meta = deployment.spec, deployment.status, deployment.metadata
    desired = spec.replicas if spec is not None and spec.replicas is not None else 1
    observed = status.observed_generation if status is not None else None
    return DeploymentState(
        desired=desired,
        available=(status.available_replicas or 0) if status is not None else 0,
        ready=(status.ready_replicas or 0) if status is not None else 0,
        updated=(status.updated_replicas or 0) if status is not None else 0,
        observed_latest=observed is not None
        and observed >= ((meta.generation if meta is not None else None) or 0),
    )


def _deployment(
    apps: kubernetes.client.AppsV1Api, expected: ExpectedDeployment, timeout: float
) -> Check:
    try:
        found = apps.read_namespaced_deployment(
            expected.name, expected.namespace, _request_timeout=timeout
        )
    except ApiException as err:
        if err.status == 404:
            return deployment_check(expected, None)
        return Check(
            name=f"kubernetes.deployment/{expected.ref}",
            status=Status.CRITICAL,
            value=None,
            threshold="the Deployment can be read",
            detail=f"API server answered {err.status}: {err.reason}",
            advice="Give the doctor's identity read access to Deployments (view ClusterRole).",
        )
    return deployment_check(expected, _state(found))


def _network_policies(
    net: kubernetes.client.NetworkingV1Api,
    namespace: str,
    expected: tuple[str, ...],
    timeout: float,
) -> Check:
    try:
        found = net.list_namespaced_network_policy(namespace, _request_timeout=timeout)
    except ApiException as err:
        return Check(
            name=f"kubernetes.networkpolicies/{namespace}",
            status=Status.CRITICAL,
            value=None,
            threshold="NetworkPolicies can be listed",
            detail=f"API server answered {err.status}: {err.reason}",
            advice="Give the doctor's identity read access to NetworkPolicies (view ClusterRole).",
        )
    names = [str(p.metadata.name) for p in found.items if p.metadata is not None]
    return network_policy_check(namespace, expected, names)


def kubernetes_checks(
    expect: PlatformExpectations, kubeconfig: Path | None, context: str | None, timeout: float
) -> list[Check]:
    try:
        api = _api_client(kubeconfig, context)
    except (ConfigException, OSError, ValueError) as err:
        return [api_check(None, f"cannot load the kubeconfig: {describe(err)}")]
    with api:
        try:
            version = kubernetes.client.VersionApi(api).get_code(_request_timeout=timeout)
        except Exception as err:
            return [api_check(None, describe(err))]
        checks = [api_check(str(version.git_version), None)]
        apps = kubernetes.client.AppsV1Api(api)
        checks += [_deployment(apps, d, timeout) for d in expect.deployments]
        net = kubernetes.client.NetworkingV1Api(api)
        checks += [
            _network_policies(net, ns, names, timeout)
            for ns, names in expect.network_policies.items()
        ]
    return checks
