"""Properties of the AWS layer, asserted on what the real program registers (mock engine)."""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any

import pytest

from contracts.config import load_from_mapping
from infra.layers.tagging import REQUIRED_TAG_KEYS
from infra.plan.document import Plan, PlanResource
from tests.stacks import stack_values

AWS_STACKS = ("staging", "prod")


def of_type(plan: Plan, typ: str) -> list[PlanResource]:
    return [r for r in plan.resources if r.type == typ]


def one(plan: Plan, typ: str) -> PlanResource:
    found = of_type(plan, typ)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def ids_of(plan: Plan, typ: str, name_part: str) -> dict[str, PlanResource]:
    """Resources of a type whose logical name contains `name_part`, keyed by name."""
    return {r.name: r for r in of_type(plan, typ) if name_part in r.name}


def _resource_class(typ: str) -> Any:
    # "aws:ec2/vpc:Vpc" → pulumi_aws.ec2.Vpc
    _, module_path, cls = typ.split(":")
    module = importlib.import_module(f"pulumi_aws.{module_path.split('/')[0]}")
    return getattr(module, cls)


def _taggable(typ: str) -> bool:
    return "tags" in inspect.signature(_resource_class(typ)._internal_init).parameters


def test_prod_endpoint_is_private_only(plans: dict[str, Plan]) -> None:
    vpc_config = one(plans["prod"], "aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc_config["endpointPrivateAccess"] is True
    assert vpc_config["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in vpc_config


def test_staging_endpoint_is_public_behind_allow_list(plans: dict[str, Plan]) -> None:
    vpc_config = one(plans["staging"], "aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc_config["endpointPublicAccess"] is True
    assert vpc_config["publicAccessCidrs"] == ["203.0.113.0/24"]


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_subnets_span_configured_zones(plans: dict[str, Plan], stack: str) -> None:
    zones = stack_values(stack)["network"]["availabilityZones"]
    private = ids_of(plans[stack], "aws:ec2/subnet:Subnet", "-private-")
    assert sorted(s.inputs["availabilityZone"] for s in private.values()) == sorted(zones)
    if stack == "prod":
        assert len(zones) >= 3


@pytest.mark.parametrize(("stack", "expected_nats"), [("prod", 3), ("staging", 1)])
def test_nat_gateways_and_private_routes(
    plans: dict[str, Plan], stack: str, expected_nats: int
) -> None:
    plan = plans[stack]
    nats = of_type(plan, "aws:ec2/natGateway:NatGateway")
    assert len(nats) == expected_nats
    # Each private route table's default route goes through a NAT; prod: one NAT per zone.
    routes = [r for r in of_type(plan, "aws:ec2/route:Route") if "-private-" in r.name]
    nat_ids = [r.inputs["natGatewayId"] for r in routes]
    assert len(routes) == len(stack_values(stack)["network"]["availabilityZones"])
    assert len(set(nat_ids)) == expected_nats
    # NAT gateways sit in public subnets, each in a different one.
    public_ids = {r.urn for r in ids_of(plan, "aws:ec2/subnet:Subnet", "-public-").values()}
    for nat in nats:
        assert any(dep in public_ids for dep in nat.dependencies)


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_secrets_encrypted_with_rotating_kms_key(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    cluster = one(plan, "aws:eks/cluster:Cluster")
    key = ids_of(plan, "aws:kms/key:Key", "cluster-secrets")["cluster-secrets"]
    assert all(k.inputs["enableKeyRotation"] is True for k in of_type(plan, "aws:kms/key:Key"))
    (encryption,) = (
        cluster.inputs["encryptionConfig"]
        if isinstance(cluster.inputs["encryptionConfig"], list)
        else [cluster.inputs["encryptionConfig"]]
    )
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"]["keyArn"].startswith("arn:aws:kms:")
    assert key.urn in cluster.dependencies
    assert key.inputs["enableKeyRotation"] is True


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_control_plane_logging(plans: dict[str, Plan], stack: str) -> None:
    cluster = one(plans[stack], "aws:eks/cluster:Cluster")
    assert set(cluster.inputs["enabledClusterLogTypes"]) == {
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    }


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_every_taggable_aws_resource_carries_required_tags(
    plans: dict[str, Plan], stack: str
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    expected = {
        "environment": stack,
        "owner": cfg.tags.owner,
        "cost-centre": cfg.tags.cost_centre,
        "managed-by": "pulumi",
        **cfg.tags.extra,
    }
    checked = 0
    for r in plans[stack].resources:
        if not (r.custom and r.type.startswith("aws:")) or not _taggable(r.type):
            continue
        tags = r.inputs.get("tags") or {}
        missing = {k: v for k, v in expected.items() if tags.get(k) != v}
        assert not missing, f"{r.type} {r.name} lacks tags {missing}"
        checked += 1
    assert set(REQUIRED_TAG_KEYS) <= set(expected)
    assert checked > 30


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_irsa_trust_is_scoped_to_one_service_account(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    oidc = one(plan, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    issuer = one(plan, "aws:eks/cluster:Cluster")
    web_identity_roles = []
    for role in of_type(plan, "aws:iam/role:Role"):
        policy = json.loads(role.inputs["assumeRolePolicy"])
        statements = policy["Statement"]
        if not any(s["Action"] == "sts:AssumeRoleWithWebIdentity" for s in statements):
            continue
        web_identity_roles.append(role)
        assert len(statements) == 1
        (statement,) = statements
        assert statement["Effect"] == "Allow"
        assert statement["Principal"]["Federated"].startswith("arn:aws:iam::")
        assert oidc.urn in role.dependencies
        assert set(statement["Condition"]) == {"StringEquals"}, "no StringLike wildcards"
        conditions = statement["Condition"]["StringEquals"]
        subs = [v for k, v in conditions.items() if k.endswith(":sub")]
        auds = [v for k, v in conditions.items() if k.endswith(":aud")]
        assert len(subs) == 1 and isinstance(subs[0], str)
        namespace, account = subs[0].removeprefix("system:serviceaccount:").split(":")
        assert "*" not in namespace + account and namespace and account
        assert auds == ["sts.amazonaws.com"]
    from infra.platform.workloads import runtime_workloads

    runtime = {
        f"agents-{w.identity}-irsa-role"
        for w in runtime_workloads(load_from_mapping(stack_values(stack)))
        if w.owns_service
    }
    assert {r.name for r in web_identity_roles} == {
        "cluster-vpc-cni-role",
        "cluster-aws-ebs-csi-driver-role",
        "vault-unseal-role",
        "scaling-cluster-autoscaler-irsa-role",
        "logs-fluent-bit-irsa-role",
        *runtime,
    }
    assert issuer.inputs["name"]


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_node_groups_private_imdsv2_and_labelled(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    private_urns = {r.urn for r in ids_of(plan, "aws:ec2/subnet:Subnet", "-private-").values()}
    templates = {r.name: r for r in of_type(plan, "aws:ec2/launchTemplate:LaunchTemplate")}
    groups = of_type(plan, "aws:eks/nodeGroup:NodeGroup")
    assert {g.name for g in groups} == {
        f"cluster-{g['name']}" for g in stack_values(stack)["cluster"]["nodeGroups"]
    }
    for group in groups:
        subnet_deps = {d for d in group.dependencies if "aws:ec2/subnet:Subnet" in d}
        assert subnet_deps == private_urns, group.name
        assert "nodeGroupName" not in group.inputs, "fixed names force delete-before-create"
        assert group.inputs["nodeGroupNamePrefix"].endswith("-")
        assert group.inputs["labels"]["agentops.io/node-role"]
        metadata = templates[group.name].inputs["metadataOptions"]
        assert metadata["httpTokens"] == "required"
        assert metadata["httpPutResponseHopLimit"] == 1


def test_gpu_group_is_tainted(plans: dict[str, Plan]) -> None:
    gpu = next(g for g in of_type(plans["prod"], "aws:eks/nodeGroup:NodeGroup") if "gpu" in g.name)
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in gpu.inputs[
        "taints"
    ]


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_addons_pinned_from_version_table(plans: dict[str, Plan], stack: str) -> None:
    from contracts import versions

    minor = stack_values(stack)["cluster"]["kubernetesVersion"]
    addons = {a.inputs["addonName"]: a for a in of_type(plans[stack], "aws:eks/addon:Addon")}
    assert {k: a.inputs["addonVersion"] for k, a in addons.items()} == dict(
        versions.for_minor(minor).addons
    )
    cluster = one(plans[stack], "aws:eks/cluster:Cluster")
    for addon in addons.values():
        assert cluster.urn in addon.dependencies
    for group in of_type(plans[stack], "aws:eks/nodeGroup:NodeGroup"):
        assert addons["vpc-cni"].urn in group.dependencies
        assert addons["kube-proxy"].urn in group.dependencies


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_ecr_scans_on_push_with_immutable_tags(plans: dict[str, Plan], stack: str) -> None:
    repos = of_type(plans[stack], "aws:ecr/repository:Repository")
    assert {r.inputs["name"] for r in repos} == {
        f"agentops/{n}" for n in ("agent-manager", "cost-engine", "agent-worker")
    }
    for repo in repos:
        assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repo.inputs["imageScanningConfiguration"]["scanOnPush"] is True


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_stack_outputs(plans: dict[str, Plan], stack: str) -> None:
    outputs = plans[stack].outputs
    assert outputs["kubeconfig"] == "[secret]"
    assert outputs["clusterName"] == f"agentops-{stack}"
    assert outputs["clusterEndpoint"].startswith("https://")
    assert outputs["oidcProviderArn"].startswith("arn:aws:iam::")
    assert set(outputs["ecrRepositoryUrls"]) == {"agent-manager", "cost-engine", "agent-worker"}
    assert outputs["vpcId"].startswith("vpc-")
    assert len(outputs["privateSubnetIds"]) == 3


def test_kubernetes_provider_waits_for_access_entries(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    provider = one(plan, "pulumi:providers:kubernetes")
    associations = of_type(plan, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert associations
    for assoc in associations:
        assert assoc.urn in provider.dependencies
    assert provider.inputs["kubeconfig"] == "[secret]"


def test_local_stack_has_no_aws_resources(plans: dict[str, Plan]) -> None:
    assert not [r for r in plans["local"].resources if r.type.startswith("aws:")]
    assert one(plans["local"], "pulumi:providers:kubernetes")
