"""Agent storage in the real plans: per pool one bucket, its public access block, KMS default
encryption, versioning and TLS-only policy, and the pool's IRSA role scoped to that bucket; the
worker's env names the bucket; the local stack has none."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.config.storage import pool_bucket_name
from contracts.settings.environment import env_name
from contracts.settings.worker import WorkerSettings
from infra.plan.document import Plan, PlanResource
from tests.stacks import stack_values

AWS_STACKS = ("staging", "prod")
BLOCK_KEYS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _of(plan: Plan, type_: str) -> list[PlanResource]:
    return [r for r in plan.resources if r.type == type_]


def _on_bucket(plan: Plan, type_: str, bucket: PlanResource) -> PlanResource:
    (found,) = [r for r in _of(plan, type_) if bucket.urn in r.dependencies]
    return found


def _pools(stack: str) -> list[str]:
    return [p["name"] for p in stack_values(stack)["agents"]["pools"]]


def _bucket(stack: str, pool: str) -> str:
    return pool_bucket_name(stack_values(stack)["storage"]["bucketPrefix"], stack, pool)


def _worker_env(plan: Plan, pool: str) -> dict[str, Any]:
    (deployment,) = [
        r
        for r in plan.resources
        if r.is_kubernetes_object
        and r.inputs["kind"] == "Deployment"
        and r.inputs["metadata"]["name"] == f"agent-{pool}"
    ]
    (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_each_pool_has_a_private_kms_encrypted_versioned_tls_only_bucket(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    buckets = {r.inputs["bucket"]: r for r in _of(plan, "aws:s3/bucket:Bucket")}
    assert set(buckets) == {_bucket(stack, p) for p in _pools(stack)}
    (key,) = [r for r in _of(plan, "aws:kms/key:Key") if r.name == "storage-key"]
    assert key.inputs["enableKeyRotation"] is True
    for name, bucket in buckets.items():
        block = _on_bucket(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket)
        assert all(block.inputs[k] is True for k in BLOCK_KEYS), block.inputs
        sse = _on_bucket(
            plan,
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            bucket,
        )
        (rule,) = sse.inputs["rules"]
        assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
        assert rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"].startswith(
            "arn:aws:kms:"
        )
        versioning = _on_bucket(plan, "aws:s3/bucketVersioning:BucketVersioning", bucket)
        assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
        policy = json.loads(
            _on_bucket(plan, "aws:s3/bucketPolicy:BucketPolicy", bucket).inputs["policy"]
        )
        (deny,) = policy["Statement"]
        assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Resource"] == [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_each_pool_role_reaches_its_own_bucket_only(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    sse_keys = {
        rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"]
        for r in plan.resources
        if r.type.startswith("aws:s3/bucketServerSideEncryptionConfiguration:")
        for rule in r.inputs["rules"]
    }
    (key_arn,) = sse_keys  # one key encrypts every pool's bucket: the storage layer's
    for pool in _pools(stack):
        (inline,) = [
            r
            for r in _of(plan, "aws:iam/rolePolicy:RolePolicy")
            if r.name == f"agents-agent-{pool}-irsa-inline"
        ]
        statements = json.loads(inline.inputs["policy"])["Statement"]
        actions = {a for s in statements for a in s["Action"]}
        assert actions == {
            "s3:ListBucket",
            "s3:GetObject",
            "s3:PutObject",
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:GenerateDataKey",
        }
        bucket = f"arn:aws:s3:::{_bucket(stack, pool)}"
        resources = {s["Resource"] for s in statements}
        assert resources == {bucket, f"{bucket}/*", key_arn}
        others = [_bucket(stack, p) for p in _pools(stack) if p != pool]
        assert not any(o in inline.inputs["policy"] for o in others)
        assert all(s["Effect"] == "Allow" and s["Resource"] != "*" for s in statements)
        assert _worker_env(plan, pool)[env_name(WorkerSettings, "storage_bucket")] == (
            _bucket(stack, pool)
        )


def test_local_stack_has_no_agent_storage(plans: dict[str, Plan]) -> None:
    plan = plans["local"]
    assert not [r for r in plan.resources if r.type.startswith("aws:")]
    for pool in _pools("local"):
        assert env_name(WorkerSettings, "storage_bucket") not in _worker_env(plan, pool)
