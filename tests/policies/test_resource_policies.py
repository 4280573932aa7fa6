"""Every resource policy, called as the engine calls it, on a violating and a compliant input."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from contracts.config.agents import DEFAULT_HANDLER, LLM_HANDLER, LOAD_TEST_LABEL
from infra.plan.policy_check import resolve_policy
from policies import ALL_POLICIES

BY_NAME = {p.name: p for p in ALL_POLICIES}
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/agentops/agent-worker"
DIGEST = "sha256:" + "a" * 64


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], False, [], PolicyCustomTimeouts(0, 0, 0), [])


RDS_KEY = "arn:aws:kms:eu-west-1:1:key/k"


def run(name: str, resource_type: str, props: dict[str, Any], **config: Any) -> list[str]:
    policy = BY_NAME[name]
    assert isinstance(policy, ResourceValidationPolicy)
    _, defaults = resolve_policy(policy, {})
    found: list[str] = []
    args = ResourceValidationArgs(
        resource_type,
        props,
        f"urn:pulumi:s::p::{resource_type}::r",
        "r",
        _opts(),
        None,
        {**defaults, **config},
    )
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def _container(**overrides: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": "app",
        "image": f"{ECR}:1.0.0@{DIGEST}",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "128Mi"},
            "limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "128Mi"},
        },
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
    }
    c.update(overrides)
    return c


def deployment(pod: dict[str, Any] | None = None, **container: Any) -> dict[str, Any]:
    spec = {"automountServiceAccountToken": False, "containers": [_container(**container)]}
    spec.update(pod or {})
    return {"spec": {"template": {"metadata": {"labels": {"app": "a"}}, "spec": spec}}}


DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _sc(**changes: Any) -> dict[str, Any]:
    sc = copy.deepcopy(_container()["securityContext"])
    sc.update(changes)
    return sc


Case = tuple[
    str, str, Callable[[], dict[str, Any]], Callable[[], dict[str, Any]], dict[str, Any], str
]


def _worker(load_test: bool = False, handler: str = DEFAULT_HANDLER) -> dict[str, Any]:
    d = deployment(env=[{"name": "AGENTOPS_HANDLER", "value": handler}])
    if load_test:
        d["spec"]["template"]["metadata"]["labels"][LOAD_TEST_LABEL] = "true"
    return d


CASES: list[Case] = [
    (
        "k8s-prod-real-agents",
        DEPLOYMENT,
        lambda: _worker(load_test=True),
        _worker,
        {"environment": "prod"},
        "runs the demo work handler in prod without the agentops.io/load-test=true label",
    ),
    (
        "k8s-prod-real-agents",
        DEPLOYMENT,
        lambda: _worker(handler=LLM_HANDLER),
        lambda: _worker(handler=DEFAULT_HANDLER),
        {"environment": "prod"},
        "demo work handler",
    ),
    (
        "k8s-run-as-non-root",
        DEPLOYMENT,
        deployment,
        lambda: deployment(securityContext=_sc(runAsNonRoot=False)),
        {},
        "may run as root",
    ),
    (
        "k8s-read-only-root-filesystem",
        DEPLOYMENT,
        deployment,
        lambda: deployment(securityContext=_sc(readOnlyRootFilesystem=False)),
        {},
        "writable root",
    ),
    (
        "k8s-no-privilege-escalation",
        DEPLOYMENT,
        deployment,
        lambda: deployment(securityContext=_sc(allowPrivilegeEscalation=True)),
        {},
        "escalate",
    ),
    (
        "k8s-drop-all-capabilities",
        DEPLOYMENT,
        deployment,
        lambda: deployment(securityContext=_sc(capabilities={"add": ["NET_ADMIN"]})),
        {},
        "does not drop ALL",
    ),
    (
        "k8s-seccomp-profile",
        DEPLOYMENT,
        deployment,
        lambda: deployment(securityContext=_sc(seccompProfile={"type": "Unconfined"})),
        {},
        "without a seccomp profile",
    ),
    (
        "k8s-no-host-access",
        DEPLOYMENT,
        deployment,
        lambda: deployment(
            {"hostNetwork": True, "volumes": [{"name": "d", "hostPath": {"path": "/"}}]}
        ),
        {},
        "host's Network namespace",
    ),
    (
        "k8s-resource-requests-and-limits",
        DEPLOYMENT,
        deployment,
        lambda: deployment(resources={"requests": {"cpu": "1"}}),
        {},
        "no requests for ['memory']",
    ),
    (
        "k8s-ephemeral-storage-limits",
        DEPLOYMENT,
        lambda: deployment({"volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]}),
        lambda: deployment(resources={"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}),
        {},
        "container app has no ephemeral-storage limits",
    ),
    (
        "k8s-ephemeral-storage-limits",
        DEPLOYMENT,
        lambda: deployment({"volumes": [{"name": "m", "emptyDir": {"medium": "Memory"}}]}),
        lambda: deployment({"volumes": [{"name": "tmp", "emptyDir": {}}]}),
        {},
        "emptyDir volume tmp has no sizeLimit",
    ),
    (
        "k8s-liveness-and-readiness-probes",
        DEPLOYMENT,
        deployment,
        lambda: deployment(livenessProbe=None),
        {},
        "lacks a livenessProbe",
    ),
    (
        "k8s-pinned-images",
        DEPLOYMENT,
        deployment,
        lambda: deployment(image=f"{ECR}:latest"),
        {"environment": "staging"},
        "'latest' tag",
    ),
    (
        "k8s-pinned-images",
        DEPLOYMENT,
        deployment,
        lambda: deployment(image=f"{ECR}:1.0.0"),
        {"environment": "prod"},
        "not pinned by digest",
    ),
    (
        "k8s-trusted-registries",
        DEPLOYMENT,
        deployment,
        lambda: deployment(image="docker.io/library/python:3.11"),
        {},
        "not from the project's",
    ),
    (
        "k8s-no-service-account-token",
        DEPLOYMENT,
        deployment,
        lambda: deployment({"automountServiceAccountToken": True}),
        {},
        "mounts a Kubernetes API token",
    ),
    (
        "k8s-namespace-pod-security",
        "kubernetes:core/v1:Namespace",
        lambda: {
            "metadata": {
                "name": "a",
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            }
        },
        lambda: {"metadata": {"name": "a", "labels": {}}},
        {},
        "enforces no Pod Security level",
    ),
    (
        "k8s-no-load-balancer-services",
        "kubernetes:core/v1:Service",
        lambda: {"metadata": {"name": "istio-ingressgateway"}, "spec": {"type": "LoadBalancer"}},
        lambda: {"metadata": {"name": "agent-manager"}, "spec": {"type": "LoadBalancer"}},
        {},
        "agent-manager is a LoadBalancer",
    ),
    (
        "istio-no-allow-all",
        "kubernetes:security.istio.io/v1:AuthorizationPolicy",
        lambda: {"spec": {"rules": [{"from": [{"source": {"principals": ["x"]}}]}]}},
        lambda: {"spec": {"action": "ALLOW", "rules": [{}]}},
        {},
        "allows every caller",
    ),
    (
        "k8s-hpa-min-replicas-prod",
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        lambda: {"spec": {"minReplicas": 2}},
        lambda: {"spec": {"minReplicas": 1}},
        {"environment": "prod"},
        "minReplicas is 1",
    ),
    (
        "eks-endpoint-access",
        "aws:eks/cluster:Cluster",
        lambda: {"vpcConfig": {"endpointPublicAccess": False}},
        lambda: {
            "vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}
        },
        {"environment": "prod"},
        "prod API endpoint is public",
    ),
    (
        "eks-endpoint-access",
        "aws:eks/cluster:Cluster",
        lambda: {
            "vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}
        },
        lambda: {"vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}},
        {"environment": "staging"},
        "open to the internet",
    ),
    (
        "eks-secrets-encryption",
        "aws:eks/cluster:Cluster",
        lambda: {"encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:k"}}},
        lambda: {},
        {},
        "not envelope-encrypted",
    ),
    (
        "eks-control-plane-logging",
        "aws:eks/cluster:Cluster",
        lambda: {"enabledClusterLogTypes": ["api", "audit", "authenticator"]},
        lambda: {"enabledClusterLogTypes": ["api"]},
        {},
        "['audit', 'authenticator'] are off",
    ),
    (
        "eks-vpc-cni-network-policy",
        "aws:eks/addon:Addon",
        lambda: {"addonName": "vpc-cni", "configurationValues": '{"enableNetworkPolicy": "true"}'},
        lambda: {"addonName": "vpc-cni"},
        {},
        "without network policy enforcement",
    ),
    (
        "ec2-imdsv2-required",
        "aws:ec2/launchTemplate:LaunchTemplate",
        lambda: {"metadataOptions": {"httpTokens": "required"}},
        lambda: {"metadataOptions": {"httpTokens": "optional"}},
        {},
        "allows IMDSv1",
    ),
    (
        "ecr-scan-on-push",
        "aws:ecr/repository:Repository",
        lambda: {"imageScanningConfiguration": {"scanOnPush": True}},
        lambda: {},
        {},
        "not scanned",
    ),
    (
        "ecr-immutable-tags",
        "aws:ecr/repository:Repository",
        lambda: {"imageTagMutability": "IMMUTABLE"},
        lambda: {"imageTagMutability": "MUTABLE"},
        {},
        "can be overwritten",
    ),
    (
        "elasticache-encryption-and-auth",
        "aws:elasticache/replicationGroup:ReplicationGroup",
        lambda: {
            "transitEncryptionEnabled": True,
            "atRestEncryptionEnabled": True,
            "authToken": "[secret]",
        },
        lambda: {"transitEncryptionEnabled": True, "atRestEncryptionEnabled": True},
        {},
        "without an auth token",
    ),
    (
        "elasticache-cluster-replicas-prod",
        "aws:elasticache/replicationGroup:ReplicationGroup",
        lambda: {"clusterMode": "enabled", "numNodeGroups": 3, "replicasPerNodeGroup": 1},
        lambda: {"clusterMode": "enabled", "numNodeGroups": 3, "replicasPerNodeGroup": 0},
        {"environment": "prod"},
        "cluster mode without replicas",
    ),
    (
        "kms-key-rotation",
        "aws:kms/key:Key",
        lambda: {"enableKeyRotation": True},
        lambda: {"enableKeyRotation": False},
        {},
        "rotation is off",
    ),
    (
        "ec2-no-world-ingress",
        "aws:ec2/securityGroup:SecurityGroup",
        lambda: {"ingress": [{"fromPort": 443, "toPort": 443, "cidrBlocks": ["10.0.0.0/16"]}]},
        lambda: {"ingress": [{"fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}]},
        {},
        "ingress from ['0.0.0.0/0'] on ports 22-22",
    ),
    (
        "s3-no-public-acl",
        "aws:s3/bucket:Bucket",
        lambda: {"acl": "private"},
        lambda: {"acl": "public-read"},
        {},
        "public-read",
    ),
    (
        "vault-ha-raft-auto-unseal",
        "kubernetes:helm.sh/v3:Release",
        lambda: {
            "chart": "vault",
            "values": {
                "server": {
                    "ha": {
                        "enabled": True,
                        "replicas": 3,
                        "raft": {"enabled": True, "config": 'seal "awskms" {}'},
                    }
                }
            },
        },
        lambda: {"chart": "vault", "values": {"server": {"dev": {"enabled": True}}}},
        {"environment": "prod"},
        "dev mode",
    ),
    (
        "no-plaintext-secrets",
        "kubernetes:helm.sh/v3:Release",
        lambda: {"values": {"auth": {"existingSecret": "redis-auth", "password": "[secret]"}}},
        lambda: {"values": {"auth": {"password": "hunter2"}}},
        {},
        "values.auth.password holds a secret-looking value",
    ),
    (
        "no-plaintext-secrets",
        "kubernetes:core/v1:ConfigMap",
        lambda: {"data": {"url": "https://example.com"}},
        lambda: {"data": {"hook": "https://hooks.slack.com/services/T000/B000/abcdef"}},
        {},
        "looks like a credential",
    ),
    (
        "aws-required-tags",
        "aws:ec2/vpc:Vpc",
        lambda: {"tags": {"environment": "prod", "owner": "o", "cost-centre": "c"}},
        lambda: {"tags": {"environment": "prod"}},
        {},
        "missing tags ['owner', 'cost-centre']",
    ),
    (
        "aws-allowed-instance-types",
        "aws:eks/nodeGroup:NodeGroup",
        lambda: {"instanceTypes": ["m6i.large"]},
        lambda: {"instanceTypes": ["x2iedn.32xlarge"]},
        {},
        "x2iedn.32xlarge is not on the allow-list",
    ),
    (
        "eks-node-group-max-size",
        "aws:eks/nodeGroup:NodeGroup",
        lambda: {"scalingConfig": {"maxSize": 10}},
        lambda: {"scalingConfig": {"maxSize": 80}},
        {},
        "maxSize 80 exceeds the per-group limit 50",
    ),
    (
        "rds-encrypted-and-private",
        "aws:rds/instance:Instance",
        lambda: {"storageEncrypted": True, "publiclyAccessible": False, "kmsKeyId": RDS_KEY},
        lambda: {"storageEncrypted": False, "publiclyAccessible": False},
        {},
        "storage is not encrypted",
    ),
    (
        "rds-encrypted-and-private",
        "aws:rds/instance:Instance",
        lambda: {"storageEncrypted": True, "kmsKeyId": RDS_KEY},
        lambda: {"storageEncrypted": True, "publiclyAccessible": True, "kmsKeyId": RDS_KEY},
        {},
        "publicly accessible",
    ),
    (
        "rds-encrypted-and-private",
        "aws:rds/instance:Instance",
        lambda: {"storageEncrypted": True, "kmsKeyId": RDS_KEY},
        lambda: {"storageEncrypted": True},
        {},
        "not encrypted with a customer-managed KMS key",
    ),
    (
        "rds-multi-az-prod",
        "aws:rds/instance:Instance",
        lambda: {"multiAz": True, "deletionProtection": True},
        lambda: {"multiAz": False, "deletionProtection": True},
        {"environment": "prod"},
        "no standby in another AZ",
    ),
    (
        "rds-multi-az-prod",
        "aws:rds/instance:Instance",
        lambda: {"multiAz": True, "deletionProtection": True},
        lambda: {"multiAz": True, "deletionProtection": False},
        {"environment": "prod"},
        "can be deleted",
    ),
]


@pytest.mark.parametrize(
    ("name", "resource_type", "good", "bad", "config", "expected"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_policy_rejects_violation_and_accepts_compliant(
    name: str,
    resource_type: str,
    good: Callable[[], dict[str, Any]],
    bad: Callable[[], dict[str, Any]],
    config: dict[str, Any],
    expected: str,
) -> None:
    assert run(name, resource_type, good(), **config) == []
    found = run(name, resource_type, bad(), **config)
    assert any(expected in message for message in found), found


def test_a_single_az_database_passes_outside_prod() -> None:
    assert run("rds-multi-az-prod", "aws:rds/instance:Instance", {}, environment="staging") == []


def test_every_resource_policy_has_cases() -> None:
    covered = {c[0] for c in CASES}
    resource = {p.name for p in ALL_POLICIES if isinstance(p, ResourceValidationPolicy)}
    assert resource <= covered, resource - covered


def test_policies_are_described_with_a_fix() -> None:
    assert len(ALL_POLICIES) >= 30
    for p in ALL_POLICIES:
        assert p.description and len(p.description) > 30, p.name
        assert p.remediation_steps, p.name
        assert p.name == p.name.lower() and " " not in p.name
