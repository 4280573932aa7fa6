"""Stack policies on real plans: the committed stacks pass, a stack missing the fact fails."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.plan.document import Plan, PlanResource
from infra.plan.policy_check import check_plan, load_pack_config, resolve_policy
from infra.plan.policy_input import policy_resources
from policies import ALL_POLICIES
from tests.flows.test_tool_servers import TWO
from tests.stacks import run_plan, write_stack

BY_NAME = {p.name: p for p in ALL_POLICIES}


def violations(name: str, resources: list[PolicyResource], **config: Any) -> list[str]:
    policy = BY_NAME[name]
    assert isinstance(policy, StackValidationPolicy)
    _, defaults = resolve_policy(policy, {})
    found: list[str] = []
    policy.validate(
        StackValidationArgs(resources, {**defaults, **config}),
        lambda message, urn=None: found.append(message),
    )
    return found


def without(plan: Plan, keep: Any) -> Plan:
    edited = copy.deepcopy(plan)
    edited.resources = [r for r in edited.resources if keep(r)]
    return edited


def kind_name(r: PlanResource) -> tuple[str, str]:
    if not r.is_kubernetes_object:
        return ("", "")
    return (r.inputs["kind"], r.inputs["metadata"].get("name", ""))


STACK_CASES = [
    (
        "k8s-namespace-default-deny",
        lambda r: kind_name(r) != ("NetworkPolicy", "default-deny"),
        "has no default-deny NetworkPolicy",
    ),
    (
        "k8s-workloads-covered-by-network-policy",
        lambda r: kind_name(r)[0] != "NetworkPolicy",
        "no NetworkPolicy in",
    ),
    (
        "istio-strict-mtls",
        lambda r: kind_name(r)[0] != "PeerAuthentication",
        "no mesh-wide PeerAuthentication",
    ),
    (
        "k8s-pdb-for-multi-replica",
        lambda r: kind_name(r)[0] != "PodDisruptionBudget",
        "without a PodDisruptionBudget",
    ),
    (
        "agent-pools-have-hpa-and-pdb",
        lambda r: kind_name(r)[0] != "HorizontalPodAutoscaler",
        "has no HorizontalPodAutoscaler",
    ),
]


@pytest.mark.parametrize(("name", "keep", "expected"), STACK_CASES, ids=[c[0] for c in STACK_CASES])
def test_stack_policy_on_plans(plans: dict[str, Plan], name: str, keep: Any, expected: str) -> None:
    for stack in ("staging", "prod"):
        assert violations(name, policy_resources(plans[stack])) == [], stack
    found = violations(name, policy_resources(without(plans["staging"], keep)))
    assert any(expected in m for m in found), found


def test_node_groups_must_sit_in_private_subnets(plans: dict[str, Plan]) -> None:
    plan = copy.deepcopy(plans["prod"])
    assert violations("eks-node-groups-private-subnets", policy_resources(plan)) == []
    for r in plan.resources:
        if r.type == "aws:ec2/subnet:Subnet" and "-private-" in r.name:
            r.inputs["mapPublicIpOnLaunch"] = True
    found = violations("eks-node-groups-private-subnets", policy_resources(plan))
    assert any("is placed in public subnet network-private-" in m for m in found)


def test_total_node_budget(plans: dict[str, Plan]) -> None:
    resources = policy_resources(plans["prod"])  # 6 + 30 + 4 = 40 nodes at most
    assert violations("eks-total-node-budget", resources) == []
    assert violations("eks-total-node-budget", resources, maxTotalNodes=39) == [
        "node groups may grow to 40 nodes; the budget allows 39"
    ]


def _resource(
    typ: str, name: str, props: dict[str, Any], deps: list[PolicyResource]
) -> PolicyResource:
    opts = PolicyResourceOptions(False, [], False, [], PolicyCustomTimeouts(0, 0, 0), [])
    return PolicyResource(
        typ, props, f"urn:pulumi:s::p::{typ}::{name}", name, opts, None, None, deps, {}
    )


def test_buckets_need_public_access_block_and_encryption() -> None:
    bucket = _resource("aws:s3/bucket:Bucket", "flow-logs", {}, [])
    block = _resource(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "block",
        dict.fromkeys(
            ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"),
            True,
        ),
        [bucket],
    )
    sse_type = (
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    kms = {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "arn:aws:kms:eu-west-1:1:key/k"}
    rules = {"rules": [{"applyServerSideEncryptionByDefault": kms}]}
    sse = _resource(sse_type, "sse", rules, [bucket])
    assert violations("s3-private-and-encrypted", [bucket, block, sse]) == []
    assert violations("s3-private-and-encrypted", [bucket]) == [
        "bucket flow-logs has no full public access block",
        "bucket flow-logs has no server-side encryption configuration",
    ]
    aes = {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}
    s3_managed = _resource(sse_type, "sse", aes, [bucket])
    assert violations("s3-private-and-encrypted", [bucket, block, s3_managed]) == [
        "bucket flow-logs is not encrypted with a KMS key (sseAlgorithm aws:kms and a "
        "kmsMasterKeyId)"
    ]


def _public_bucket(plan: Plan) -> None:
    for r in plan.resources:
        if r.type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
            r.inputs["restrictPublicBuckets"] = False


def _s3_managed_keys(plan: Plan) -> None:
    for r in plan.resources:
        if r.type.startswith("aws:s3/bucketServerSideEncryptionConfiguration:"):
            for rule in r.inputs["rules"]:
                rule["applyServerSideEncryptionByDefault"] = {"sseAlgorithm": "AES256"}


def _unencrypted_public_database(plan: Plan) -> None:
    (bucket, *_) = [r for r in plan.resources if r.type == "aws:s3/bucket:Bucket"]
    database = copy.deepcopy(bucket)
    database.type = "aws:rds/instance:Instance"
    database.name = "agent-db"
    database.urn = bucket.urn.replace("aws:s3/bucket:Bucket", database.type).replace(
        bucket.name, "agent-db"
    )
    database.inputs = {"engine": "postgres", "storageEncrypted": False, "publiclyAccessible": True}
    plan.resources.append(database)


def _shared_pool_role(plan: Plan) -> None:
    accounts = [
        r
        for r in plan.resources
        if kind_name(r)[0] == "ServiceAccount"
        and r.inputs["metadata"]["name"].startswith("agent-")
        and r.inputs["metadata"]["namespace"] == "agentops-agents"
    ]
    first, second = accounts[:2]
    role = first.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    second.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = role


@pytest.mark.parametrize(
    ("policy", "breaks", "expected"),
    [
        ("s3-private-and-encrypted", _public_bucket, "has no full public access block"),
        ("s3-private-and-encrypted", _s3_managed_keys, "is not encrypted with a KMS key"),
        ("rds-encrypted-and-private", _unencrypted_public_database, "is publicly accessible"),
        ("rds-encrypted-and-private", _unencrypted_public_database, "storage is not encrypted"),
        ("irsa-role-per-service-account", _shared_pool_role, "share the IAM role"),
    ],
    ids=[
        "public-bucket",
        "s3-managed-keys",
        "public-database",
        "unencrypted-database",
        "shared-pool-role",
    ],
)
def test_storage_policies_fail_a_broken_prod_plan(
    plans: dict[str, Plan], policy: str, breaks: Any, expected: str
) -> None:
    """The real prod plan (its agent buckets) passes; the same plan broken one way is blocked."""
    config = load_pack_config("prod")
    assert [v for v in check_plan(plans["prod"], ALL_POLICIES, config) if v.blocking] == []
    plan = copy.deepcopy(plans["prod"])
    breaks(plan)
    blocking = [v for v in check_plan(plan, ALL_POLICIES, config) if v.blocking]
    assert any(v.policy == policy and expected in v.message for v in blocking), blocking


def test_committed_plans_pass_every_mandatory_policy(plans: dict[str, Plan]) -> None:
    for stack, plan in plans.items():
        blocking = [
            v for v in check_plan(plan, ALL_POLICIES, load_pack_config(stack)) if v.blocking
        ]
        assert blocking == [], stack


def test_staging_advisories_do_not_block(plans: dict[str, Plan]) -> None:
    plan = copy.deepcopy(plans["staging"])
    for r in plan.resources:
        if r.type == "aws:eks/nodeGroup:NodeGroup":
            r.inputs["instanceTypes"] = ["x2iedn.32xlarge"]
    found = check_plan(plan, ALL_POLICIES, load_pack_config("staging"))
    assert {v.policy for v in found} == {"aws-allowed-instance-types"}
    assert not any(v.blocking for v in found)
    prod_rules = check_plan(plan, ALL_POLICIES, load_pack_config("prod"))
    assert any(v.blocking and v.policy == "aws-allowed-instance-types" for v in prod_rules)


def test_latest_tag_fails_the_plan_naming_the_policy(tmp_path: Path) -> None:
    def latest(config: dict[str, Any]) -> None:
        config["agentops:agents"]["pools"][0]["image"]["tag"] = "latest"

    proc = run_plan("staging", tmp_path / "out", write_stack(tmp_path / "s", "staging", latest))
    assert proc.returncode == 4, proc.stderr
    assert "[mandatory] k8s-pinned-images on agents-agent-code-generator" in proc.stderr
    assert "uses the 'latest' tag" in proc.stderr
    assert "fix: Set agents.*.image.tag to a version" in proc.stderr


def test_public_endpoint_and_missing_limits_are_named(plans: dict[str, Plan]) -> None:
    # The prod config rules refuse a public endpoint before any policy runs; judged by the
    # prod pack config, a plan with one (the staging shape) fails on the policy as well.
    found = check_plan(plans["staging"], ALL_POLICIES, load_pack_config("prod"))
    assert any(v.policy == "eks-endpoint-access" and v.blocking for v in found)
    plan = copy.deepcopy(plans["prod"])
    for r in plan.resources:
        if r.is_kubernetes_object and r.inputs["kind"] == "Deployment":
            r.inputs["spec"]["template"]["spec"]["containers"][0]["resources"].pop("limits")
    found = check_plan(plan, ALL_POLICIES, load_pack_config("prod"))
    assert {v.policy for v in found} == {
        "k8s-resource-requests-and-limits",
        "k8s-ephemeral-storage-limits",
    }


@pytest.mark.parametrize("stack", ["staging", "prod", "local"])
def test_container_without_ephemeral_storage_limit_fails_the_plan(
    plans: dict[str, Plan], stack: str
) -> None:
    """Every stack's plan passes; without one container's ephemeral-storage limit, or with the
    runtime's /tmp unbounded, the same plan fails on the policy, blocking, naming the object."""
    assert not [
        v
        for v in check_plan(plans[stack], ALL_POLICIES, load_pack_config(stack))
        if v.policy == "k8s-ephemeral-storage-limits"
    ]
    plan = copy.deepcopy(plans[stack])
    deployments = [
        r for r in plan.resources if r.is_kubernetes_object and r.inputs["kind"] == "Deployment"
    ]
    first, second = deployments[0], deployments[1]
    first.inputs["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].pop(
        "ephemeral-storage"
    )
    for volume in second.inputs["spec"]["template"]["spec"]["volumes"]:
        volume.get("emptyDir", {}).pop("sizeLimit", None)
    found = [
        v
        for v in check_plan(plan, ALL_POLICIES, load_pack_config(stack))
        if v.policy == "k8s-ephemeral-storage-limits"
    ]
    assert {v.urn for v in found} == {first.urn, second.urn}, found
    assert all(v.blocking for v in found)
    assert any("has no ephemeral-storage limits" in v.message for v in found)
    assert any("emptyDir volume tmp has no sizeLimit" in v.message for v in found)


def _image_without_digest(plan: Plan, deployment: str) -> None:
    (workload,) = [r for r in plan.resources if kind_name(r) == ("Deployment", deployment)]
    for container in workload.inputs["spec"]["template"]["spec"]["containers"]:
        container["image"] = container["image"].split("@", 1)[0]


def test_a_tool_server_without_a_pinned_image_fails_the_plan_of_prod(tmp_path: Path) -> None:
    """Config refuses an unpinned tool server in prod (tests/flows); the policy is the second
    gate, over what is rendered: the real prod plan with two tool servers passes, and the same
    plan with one server's image reduced to a tag is blocked by `k8s-pinned-images`."""

    def add_servers(config: dict[str, Any]) -> None:
        config["agentops:agents"]["toolServers"] = list(TWO)

    out = tmp_path / "out"
    proc = run_plan("prod", out, write_stack(tmp_path / "stack", "prod", add_servers))
    assert proc.returncode == 0, proc.stderr
    plan, config = Plan.load(out), load_pack_config("prod")
    assert [v for v in check_plan(plan, ALL_POLICIES, config) if v.blocking] == []
    _image_without_digest(plan, "mcp-search")
    blocking = [v for v in check_plan(plan, ALL_POLICIES, config) if v.blocking]
    assert [v.policy for v in blocking] == ["k8s-pinned-images"], blocking
    assert "mcp-search" in f"{blocking[0].message} {blocking[0].urn}"
    assert "not pinned by digest" in blocking[0].message
