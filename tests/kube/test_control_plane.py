"""The control plane the other tests rely on is what it claims to be: the pinned version, a
kubeconfig the client loads, RBAC enforced, service-account tokens issued and reviewed."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest
import yaml

from contracts.versions import VERSIONS
from tests.kubeapi import VAULT_AUDIENCE, ControlPlane
from tests.stacks import REPO

NAMESPACE = "control-plane-check"
ACCOUNT = "probe"


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


@pytest.fixture(scope="module")
def core(kube: ControlPlane) -> Iterator[kubernetes.client.CoreV1Api]:
    with kube.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        core.create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=NAMESPACE))
        )
        account = kubernetes.client.V1ObjectMeta(name=ACCOUNT)
        core.create_namespaced_service_account(
            NAMESPACE, kubernetes.client.V1ServiceAccount(metadata=account)
        )
        yield core


def _token(core: kubernetes.client.CoreV1Api, audiences: list[str]) -> str:
    request = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(audiences=audiences, expiration_seconds=600)
    )
    issued = core.create_namespaced_service_account_token(ACCOUNT, NAMESPACE, request)
    return str(issued.status.token)


def test_the_version_is_the_one_pinned_for_the_stacks(kube: ControlPlane) -> None:
    stack = yaml.safe_load((REPO / "Pulumi.staging.yaml").read_text())
    minor = stack["config"]["agentops:cluster"]["kubernetesVersion"]
    assert kube.version == VERSIONS[minor].kubernetes_patch


def test_the_kubeconfig_is_an_admin_for_the_python_client(kube: ControlPlane) -> None:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kube.kubeconfig), client_configuration=configuration
    )
    with kubernetes.client.ApiClient(configuration) as api:
        names = [n.metadata.name for n in kubernetes.client.CoreV1Api(api).list_namespace().items]
    assert {"default", "kube-system"} <= set(names)
    assert kube.url.startswith("https://127.0.0.1:")


def test_a_service_account_token_is_issued_and_reviewed(
    kube: ControlPlane, core: kubernetes.client.CoreV1Api
) -> None:
    token = _token(core, [VAULT_AUDIENCE])
    claims = _claims(token)
    assert claims["iss"] == kube.service_account_issuer
    assert claims["aud"] == [VAULT_AUDIENCE]
    assert claims["sub"] == f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}"

    authn = kubernetes.client.AuthenticationV1Api(core.api_client)
    review = authn.create_token_review(
        kubernetes.client.V1TokenReview(
            spec=kubernetes.client.V1TokenReviewSpec(token=token, audiences=[VAULT_AUDIENCE])
        )
    )
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}"
    # The same token is not valid for another audience.
    other = authn.create_token_review(
        kubernetes.client.V1TokenReview(
            spec=kubernetes.client.V1TokenReviewSpec(token=token, audiences=["elsewhere"])
        )
    )
    assert not other.status.authenticated
    assert other.status.error == (
        '[invalid bearer token, token audiences ["vault"] is invalid for the target audiences '
        '["elsewhere"]]'
    )


def test_rbac_refuses_a_service_account_without_a_role(
    kube: ControlPlane, core: kubernetes.client.CoreV1Api
) -> None:
    configuration = kubernetes.client.Configuration()
    configuration.host = kube.url
    configuration.ssl_ca_cert = str(kube.ca_path)
    configuration.api_key = {"authorization": f"Bearer {_token(core, [kube.api_audiences[0]])}"}
    with (
        kubernetes.client.ApiClient(configuration) as api,
        pytest.raises(kubernetes.client.ApiException) as refused,
    ):
        kubernetes.client.CoreV1Api(api).list_namespaced_secret(NAMESPACE)
    assert refused.value.status == 403
    assert json.loads(str(refused.value.body))["message"] == (
        f'secrets is forbidden: User "system:serviceaccount:{NAMESPACE}:{ACCOUNT}" cannot list '
        f'resource "secrets" in API group "" in the namespace "{NAMESPACE}"'
    )
