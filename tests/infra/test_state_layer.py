"""Redis per stack: ElastiCache in prod, Helm with Sentinel elsewhere, no plain password."""

from __future__ import annotations

from contracts.config import load_from_mapping
from infra.plan.document import REDACTED, Plan
from tests.stacks import stack_values


def test_prod_elasticache_is_multi_az_encrypted_and_private(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    by_type = {r.type: r for r in plan.resources if r.name.startswith("state-")}
    group = by_type["aws:elasticache/replicationGroup:ReplicationGroup"].inputs
    cfg = load_from_mapping(stack_values("prod")).redis.elasticache
    assert group["multiAzEnabled"] is True
    assert group["automaticFailoverEnabled"] is True
    assert group["transitEncryptionEnabled"] is True
    assert group["atRestEncryptionEnabled"] is True
    assert group["kmsKeyId"].startswith("arn:aws:kms:")
    assert group["authToken"] == REDACTED
    assert group["numCacheClusters"] == cfg.num_cache_clusters
    subnets = by_type["aws:elasticache/subnetGroup:SubnetGroup"].inputs["subnetIds"]
    assert subnets == plan.outputs["privateSubnetIds"]
    (rule,) = by_type["aws:ec2/securityGroup:SecurityGroup"].inputs["ingress"]
    assert (rule["fromPort"], rule["toPort"]) == (6379, 6379)
    assert "cidrBlocks" not in rule, "open to the node security group only"
    assert rule["securityGroups"][0].startswith("sg-")
    assert plan.outputs["redisUrl"].startswith("rediss://master.")
    assert plan.outputs["redisPassword"] == REDACTED


def test_staging_redis_is_replicated_with_sentinel_and_aof(plans: dict[str, Plan]) -> None:
    plan = plans["staging"]
    (release,) = [
        r
        for r in plan.resources
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs["name"] == "redis"
    ]
    values = release.inputs["values"]
    assert values["architecture"] == "replication"
    assert values["sentinel"]["enabled"] is True
    assert values["auth"]["existingSecret"] == "redis-auth"
    assert values["commonConfiguration"].splitlines() == ["appendonly yes", "appendfsync everysec"]
    assert values["metrics"]["enabled"] is True
    assert plan.outputs["redisUrl"] == (
        "redis+sentinel://redis.agentops-platform.svc.cluster.local:26379/mymaster/0"
    )
    assert not [r for r in plan.resources if r.type.startswith("aws:elasticache")]


def test_runtime_gets_the_url_without_password(plans: dict[str, Plan]) -> None:
    for stack, plan in plans.items():
        url = plan.outputs["redisUrl"]
        assert "@" not in url, stack
        for r in plan.resources:
            if r.is_kubernetes_object and r.inputs["kind"] == "Deployment":
                (container,) = r.inputs["spec"]["template"]["spec"]["containers"]
                env = {e["name"]: e.get("value") for e in container["env"]}
                assert env["AGENTOPS_REDIS_URL"] == url


def test_the_in_cluster_redis_fsyncs_as_its_stack_says(plans: dict[str, Plan]) -> None:
    """staging chooses everysec in its stack file; local keeps the default, always."""
    for stack, fsync in (("staging", "everysec"), ("local", "always")):
        assert load_from_mapping(stack_values(stack)).redis.appendfsync == fsync
        (release,) = [
            r
            for r in plans[stack].resources
            if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs["name"] == "redis"
        ]
        assert f"appendfsync {fsync}" in release.inputs["values"]["commonConfiguration"], stack
