"""Deliberately broken manifests fail on the real API server, with the API server's own words.

These are the failures the plan tests above would report if our rendered manifests had them:
a container without a security context in a `restricted` namespace (Pod Security admission),
a field the schema does not declare (strict field validation) and a Deployment whose selector
does not select its own pods (API validation).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest
from kubernetes.dynamic import DynamicClient

from tests.kube.apply import FIELD_MANAGER, apply, dynamic_client
from tests.kubeapi import ControlPlane
from tests.waiting import eventually

NAMESPACE = "broken-manifests"
LABELS = {"app.kubernetes.io/name": "probe"}
# Everything the `restricted` Pod Security level asks of a container.
RESTRICTED_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _deployment(name: str, security_context: dict[str, Any] | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "registry.example/probe:1"}
    if security_context is not None:
        container["securityContext"] = security_context
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(LABELS)},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {"automountServiceAccountToken": False, "containers": [container]},
            },
        },
    }


def _message(err: kubernetes.client.ApiException) -> str:
    return str(json.loads(err.body)["message"])


@pytest.fixture(scope="module")
def client(kube: ControlPlane) -> Iterator[DynamicClient]:
    with kube.api_client() as api:
        dynamic = dynamic_client(api, kube.directory)
        namespaces = dynamic.resources.get(api_version="v1", kind="Namespace")
        apply(
            dynamic,
            namespaces,
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": NAMESPACE,
                    "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
                },
            },
        )
        core = kubernetes.client.CoreV1Api(api)
        eventually(
            f"service account default in {NAMESPACE}",
            lambda: (
                core.list_namespaced_service_account(
                    NAMESPACE, field_selector="metadata.name=default"
                ).items
                or None
            ),
        )
        yield dynamic


def _deployments(client: DynamicClient) -> Any:
    return client.resources.get(api_version="apps/v1", kind="Deployment")


def test_a_pod_without_security_context_is_forbidden_in_a_restricted_namespace(
    client: DynamicClient,
) -> None:
    core = kubernetes.client.CoreV1Api(client.client)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare", "namespace": NAMESPACE},
        "spec": _deployment("bare", None)["spec"]["template"]["spec"],
    }
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.create_namespaced_pod(NAMESPACE, pod)
    assert refused.value.status == 403
    message = _message(refused.value)
    assert message.startswith('pods "bare" is forbidden: violates PodSecurity "restricted:latest"')
    assert 'container "app" must set securityContext.allowPrivilegeEscalation=false' in message
    assert 'container "app" must set securityContext.capabilities.drop=["ALL"]' in message
    assert "must set securityContext.runAsNonRoot=true" in message
    assert 'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"' in message

    # The same pod with the restricted context is admitted.
    pod["metadata"]["name"] = "restricted"
    pod["spec"] = copy.deepcopy(pod["spec"])
    pod["spec"]["containers"][0]["securityContext"] = RESTRICTED_CONTEXT
    created = core.create_namespaced_pod(NAMESPACE, pod)
    assert created.status.phase == "Pending"


def test_a_deployment_without_security_context_gets_no_pods(client: DynamicClient) -> None:
    """The Deployment is stored (the API server only warns), but its ReplicaSet cannot create a
    single pod: the FailedCreate event carries Pod Security's refusal, and no pod exists."""
    apply(client, _deployments(client), _deployment("insecure", None))
    core = kubernetes.client.CoreV1Api(client.client)

    def failed_create() -> list[str] | None:
        events = core.list_namespaced_event(NAMESPACE, field_selector="reason=FailedCreate")
        messages = [
            e.message for e in events.items if e.involved_object.name.startswith("insecure-")
        ]
        return messages or None

    messages = eventually("a FailedCreate event of the insecure ReplicaSet", failed_create)
    assert 'is forbidden: violates PodSecurity "restricted:latest"' in messages[0]
    assert 'container "app" must set securityContext.allowPrivilegeEscalation=false' in messages[0]
    pods = core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/name=probe")
    assert [p.metadata.name for p in pods.items if p.metadata.name.startswith("insecure-")] == []


def _typo() -> dict[str, Any]:
    body = _deployment("typo", RESTRICTED_CONTEXT)
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["securityContxt"] = container.pop("securityContext")
    return body


def test_an_unknown_field_is_refused_by_server_side_apply(client: DynamicClient) -> None:
    with pytest.raises(kubernetes.client.ApiException) as refused:
        apply(client, _deployments(client), _typo())
    # Server-side apply cannot type an undeclared field, whatever fieldValidation says. The
    # API server reports it as 500 (kubernetes/kubernetes#139253: a 400 once that is fixed).
    assert refused.value.status in {400, 500}
    assert _message(refused.value) == (
        "failed to create typed patch object (broken-manifests/typo; apps/v1, Kind=Deployment): "
        '.spec.template.spec.containers[name="app"].securityContxt: field not declared in schema'
    )
    deployments = kubernetes.client.AppsV1Api(client.client)
    names = [d.metadata.name for d in deployments.list_namespaced_deployment(NAMESPACE).items]
    assert "typo" not in names


def test_an_unknown_field_is_refused_by_strict_field_validation(client: DynamicClient) -> None:
    """A client that creates instead of applying (the runtime, kubectl create) gets the strict
    decoder's refusal with `fieldValidation=Strict`."""
    with pytest.raises(kubernetes.client.ApiException) as refused:
        client.create(
            _deployments(client),
            body=_typo(),
            namespace=NAMESPACE,
            query_params=[("fieldValidation", "Strict"), ("fieldManager", FIELD_MANAGER)],
        )
    assert refused.value.status == 400
    assert _message(refused.value) == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].securityContxt"'
    )


def test_a_deployment_whose_selector_misses_its_pods_is_invalid(client: DynamicClient) -> None:
    body = _deployment("mismatch", RESTRICTED_CONTEXT)
    body["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "other"}
    with pytest.raises(kubernetes.client.ApiException) as refused:
        apply(client, _deployments(client), body)
    assert refused.value.status == 422
    message = _message(refused.value)
    assert message.startswith('Deployment.apps "mismatch" is invalid: ')
    assert "spec.template.metadata.labels: Invalid value: " in message
    assert "`selector` does not match template `labels`" in message


def test_the_field_manager_owns_what_it_applied(client: DynamicClient) -> None:
    """Server-side apply records the manager, so a second tool changing these fields would
    conflict instead of silently overwriting them."""
    stored = apply(client, _deployments(client), _deployment("owned", RESTRICTED_CONTEXT))
    managers = {entry["manager"] for entry in stored["metadata"]["managedFields"]}
    assert FIELD_MANAGER in managers
