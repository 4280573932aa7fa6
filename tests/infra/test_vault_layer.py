"""Vault: HA raft over TLS, KMS auto-unseal through IRSA, one policy and role per identity."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.config import load_from_mapping
from infra.plan.document import REDACTED, Plan, PlanResource
from infra.platform.names import Namespace
from infra.platform.runtime_secrets import (
    AGENT_TOKEN,
    COST_ENGINE_TOKEN,
    MANAGER_API_TOKENS,
    MANAGER_WEBHOOK_TOKEN,
    REDIS_SECRET_PATH,
)
from tests.stacks import stack_values

AWS = ("staging", "prod")


def _of(plan: Plan, typ: str) -> list[PlanResource]:
    return [r for r in plan.resources if r.type == typ]


def _release(plan: Plan) -> dict[str, Any]:
    (release,) = [
        r for r in _of(plan, "kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "vault"
    ]
    return dict(release.inputs["values"])


@pytest.mark.parametrize("stack", AWS)
def test_ha_raft_with_kms_unseal(plans: dict[str, Plan], stack: str) -> None:
    cfg = load_from_mapping(stack_values(stack)).vault
    server = _release(plans[stack])["server"]
    assert server["ha"]["enabled"] is True
    assert server["ha"]["replicas"] == cfg.replicas
    hcl = server["ha"]["raft"]["config"]
    assert hcl.count("retry_join {") == cfg.replicas
    assert 'seal "awskms"' in hcl
    # In the mesh (both AWS stacks) the listener is plaintext behind the servers' sidecars,
    # which authorize each request by path (tests/flows/test_mesh_decisions.py).
    assert load_from_mapping(stack_values(stack)).mesh.enabled
    assert "tls_disable = true" in hcl
    assert "tls_cert_file" not in hcl
    (key,) = [k for k in _of(plans[stack], "aws:kms/key:Key") if k.name == "vault-unseal"]
    assert key.inputs["enableKeyRotation"] is True
    role_arn = server["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    (role,) = [r for r in _of(plans[stack], "aws:iam/role:Role") if r.name == "vault-unseal-role"]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]
    assert "system:serviceaccount:vault:vault" in trust["StringEquals"].values()
    assert role_arn.startswith(f"arn:aws:iam::123456789012:role/{role.name}-")
    (inline,) = [
        r
        for r in _of(plans[stack], "aws:iam/rolePolicy:RolePolicy")
        if r.name == "vault-unseal-inline"
    ]
    statement = json.loads(inline.inputs["policy"])["Statement"][0]
    assert statement["Action"] == ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]
    assert statement["Resource"].startswith("arn:aws:kms:")


def test_local_vault_has_no_kms_and_no_api_configuration(plans: dict[str, Plan]) -> None:
    plan = plans["local"]
    hcl = _release(plan)["server"]["ha"]["raft"]["config"]
    assert "awskms" not in hcl
    assert not [r for r in plan.resources if r.type.startswith("vault:")]
    # No mesh: Vault terminates its own TLS.
    assert "tls_cert_file" in hcl
    assert "tls_disable" not in hcl


@pytest.mark.parametrize("stack", AWS)
def test_one_role_and_policy_per_runtime_identity(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    accounts = {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"])
        for r in plan.resources
        if r.is_kubernetes_object
        and r.inputs["kind"] == "ServiceAccount"
        and r.inputs["metadata"]["namespace"] in (Namespace.PLATFORM.value, Namespace.AGENTS.value)
    }
    roles = {
        r.inputs["roleName"]: r.inputs
        for r in _of(plan, "vault:kubernetes/authBackendRole:AuthBackendRole")
    }
    policies = {
        r.inputs["name"]: r.inputs["policy"] for r in _of(plan, "vault:index/policy:Policy")
    }
    assert {(r["boundServiceAccountNamespaces"][0], n) for n, r in roles.items()} == accounts
    for name, role in roles.items():
        assert role["boundServiceAccountNames"] == [name]
        assert role["tokenPolicies"] == [name]
        assert role["audience"] == "vault"
        own = [line for line in policies[name].splitlines() if f"/{name}/*" in line]
        assert len(own) == 2
        for other in roles:
            if other != name:
                assert f"/{other}/" not in policies[name], f"{name} may read {other}'s secrets"
    # The token the pods present carries the audience the roles require.
    for r in plan.resources:
        if r.is_kubernetes_object and r.inputs["kind"] == "Deployment":
            volumes = r.inputs["spec"]["template"]["spec"]["volumes"]
            (projected,) = [v for v in volumes if v["name"] == "vault-token"]
            token = projected["projected"]["sources"][0]["serviceAccountToken"]
            assert token["audience"] == "vault"


@pytest.mark.parametrize("stack", AWS)
def test_kv_v2_transit_and_secrets_stay_secret(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    mounts = {r.inputs["path"]: r.inputs for r in _of(plan, "vault:index/mount:Mount")}
    assert mounts["agents"]["type"] == "kv"
    assert mounts["agents"]["options"] == {"version": "2"}
    assert mounts["transit"]["type"] == "transit"
    entries = {r.inputs["name"]: r.inputs for r in _of(plan, "vault:kv/secretV2:SecretV2")}
    # The Redis password and the runtime's tokens, every one a Pulumi secret.
    assert set(entries) == {
        REDIS_SECRET_PATH,
        AGENT_TOKEN,
        COST_ENGINE_TOKEN,
        MANAGER_API_TOKENS,
        MANAGER_WEBHOOK_TOKEN,
    }
    for entry in entries.values():
        assert entry["dataJson"] == REDACTED
    (provider,) = _of(plan, "pulumi:providers:vault")
    assert provider.inputs["token"] == REDACTED
    (tls_secret,) = [
        r
        for r in plan.resources
        if r.is_kubernetes_object
        and r.inputs["kind"] == "Secret"
        and r.inputs["metadata"]["name"] == "vault-tls"
    ]
    assert tls_secret.inputs["stringData"] == REDACTED
