"""The worker uses its pool's bucket: an output above the threshold is written to
`<team>/<task id>/<attempt>/output.json` with SSE-KMS and the task's result names the object;
a small one stays in the result.

The S3 is moto's server (PyPI `moto[server]`): started here on 127.0.0.1 on a free port over
TLS (a CA of the test's own, trustme; the bucket's TLS-only policy refuses plain HTTP) and
stopped by PID, with IAM enforcement on. The bucket is set up as the staging plan renders it
(public access block, `aws:kms` default encryption with bucket keys, versioning, the TLS-only
policy: read out of the real plan), and the pool's role carries the storage layer's own
`pool_access_policy`. The worker logs in as IRSA does: its projected token exchanged at STS
(`AssumeRoleWithWebIdentity`) for the role's keys."""

from __future__ import annotations

import json
import logging
import os
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import trustme
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import ValidationError

from contracts.settings.worker import WorkerSettings
from infra.layers.storage import pool_access_policy
from infra.plan.document import Plan
from runtime.manager.queue import TaskRecord, TaskStatus
from runtime.manager.registry import AgentProfile
from runtime.worker.artifacts import ROLE_ENV, TOKEN_ENV, ArtifactStore, artifact_key
from runtime.worker.handlers.base import HandlerResult, TaskContext
from runtime.worker.manager_client import ManagerClient
from runtime.worker.metrics import WorkerMetrics
from runtime.worker.runner import Worker
from tests.managed import ManagedProcess
from tests.runtime.worker.test_runner import Platform, run, settings
from tests.servers import RedisServer, free_port, redis_server

REGION = "eu-west-1"
POOL = "code-generator"
OTHER_POOL = "security-scanner"
# A web identity token as EKS projects it; moto does not check its signature.
WEB_IDENTITY_TOKEN = "eyJhbGciOiJSUzI1NiJ9.test-web-identity-token.c2lnbmF0dXJl"
# moto's own keys: unchecked until the test turns IAM enforcement on.
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class S3:
    url: str
    ca_file: Path

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            verify=str(self.ca_file),
            config=Config(s3={"addressing_style": "path"}),
            **KEYS,
        )

    def check_iam_after(self, requests: float) -> None:
        """moto serves the next `requests` requests unchecked, then checks each one's signature
        and IAM permissions (moto's `/moto-api/reset-auth`)."""
        answer = httpx.post(
            f"{self.url}/moto-api/reset-auth", content=str(requests), verify=self._tls()
        )
        answer.raise_for_status()

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3]:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_pem = tmp_path / "moto.pem"
    key_pem = tmp_path / "moto.key"
    issued = ca.issue_cert("127.0.0.1")
    issued.private_key_pem.write_to_path(str(key_pem))
    issued.cert_chain_pems[0].write_to_path(str(server_pem))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(server_pem), append=True)
    tls = ssl.create_default_context(cafile=str(ca_file))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    moto = ManagedProcess(
        "moto_server",
        [
            str(Path(sys.executable).parent / "moto_server"),
            *("-H", "127.0.0.1", "-p", str(port), "-c", str(server_pem), "-k", str(key_pem)),
        ],
        tmp_path / "moto.log",
        env=_clean_env(),
        ready=lambda: httpx.get(f"{url}/moto-api/", verify=tls).status_code == 200,
        start_timeout=60,
    ).start()
    try:
        yield S3(url, ca_file)
    finally:
        moto.stop()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


def _rendered(plan: Plan, kind: str, name: str) -> dict[str, Any]:
    (found,) = [r.inputs for r in plan.resources if r.type == kind and r.name == name]
    return found


def _planned_bucket(plan: Plan, pool: str) -> str:
    (bucket,) = [
        r.inputs["bucket"]
        for r in plan.resources
        if r.type == "aws:s3/bucket:Bucket" and r.inputs["bucket"].endswith(f"-{pool}")
    ]
    return str(bucket)


def _bucket_as_planned(plan: Plan, s3: S3, pool: str, key_id: str) -> str:
    """Create a pool's bucket on moto with the staging plan's settings; its name."""
    bucket = _planned_bucket(plan, pool)
    name = f"storage-{pool}"
    block = _rendered(
        plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"{name}-public-access"
    )
    encryption = _rendered(
        plan,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        f"{name}-encryption",
    )
    versioning = _rendered(plan, "aws:s3/bucketVersioning:BucketVersioning", f"{name}-versioning")
    client = s3.client("s3")
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": block["blockPublicAcls"],
            "IgnorePublicAcls": block["ignorePublicAcls"],
            "BlockPublicPolicy": block["blockPublicPolicy"],
            "RestrictPublicBuckets": block["restrictPublicBuckets"],
        },
    )
    (rule,) = encryption["rules"]
    default = rule["applyServerSideEncryptionByDefault"]
    assert default["sseAlgorithm"] == "aws:kms"
    client.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    # The plan's key is the storage layer's KMS key: moto's stands in for it.
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": default["sseAlgorithm"],
                        "KMSMasterKeyID": key_id,
                    },
                    "BucketKeyEnabled": rule["bucketKeyEnabled"],
                }
            ]
        },
    )
    client.put_bucket_versioning(
        Bucket=bucket,
        VersioningConfiguration={"Status": versioning["versioningConfiguration"]["status"]},
    )
    # Not the plan's TLS-only bucket policy: moto 5.2.5 cannot evaluate its `aws:SecureTransport`
    # condition and denies every object request under it, over TLS too
    # (test_moto_cannot_judge_the_tls_only_policy). The worker speaks TLS all the same.
    return bucket


def _tls_only_policy(plan: Plan, pool: str) -> str:
    return str(
        _rendered(plan, "aws:s3/bucketPolicy:BucketPolicy", f"storage-{pool}-tls-only")["policy"]
    )


@dataclass
class Storage:
    bucket: str
    other_bucket: str
    key_id: str
    role_arn: str


def _storage_as_planned(plan: Plan, s3: S3) -> Storage:
    """The key, two pools' buckets and the first pool's IRSA role with the layer's policy."""
    key = s3.client("kms").create_key(Description="agent pools' S3 buckets")["KeyMetadata"]
    bucket = _bucket_as_planned(plan, s3, POOL, key["KeyId"])
    other = _bucket_as_planned(plan, s3, OTHER_POOL, key["KeyId"])
    iam = s3.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/eks"},
                "Action": "sts:AssumeRoleWithWebIdentity",
            }
        ],
    }
    role = iam.create_role(RoleName=f"agent-{POOL}", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName=f"agent-{POOL}",
        PolicyName="storage",
        PolicyDocument=pool_access_policy(bucket, key["Arn"]),
    )
    return Storage(bucket, other, key["KeyId"], role["Role"]["Arn"])


class Writer:
    """A handler whose output is as large as the payload asks."""

    async def __call__(self, task: TaskContext) -> HandlerResult:
        assert isinstance(task.payload, dict)
        return HandlerResult({"text": "x" * int(str(task.payload["size"]))})


def _run(
    redis: RedisServer, tmp_path: Path, s3: S3, bucket: str, role_arn: str, sizes: list[int]
) -> list[TaskRecord]:
    token_file = tmp_path / "eks-token"
    token_file.write_text(WEB_IDENTITY_TOKEN)
    irsa = {ROLE_ENV: role_arn, TOKEN_ENV: str(token_file)}

    async def body(p: Platform) -> list[TaskRecord]:
        s = settings(
            tmp_path,
            "w-1",
            None,
            storage_bucket=bucket,
            storage_region=REGION,
            storage_endpoint_url=s3.url,
            storage_ca_file=s3.ca_file,
            artifact_threshold_bytes=1024,
        )
        await p.registry.register(AgentProfile("w-1", "coder", capacity=8))
        store = ArtifactStore(s, irsa)
        worker = Worker(s, p.redis, ManagerClient(s), Writer(), WorkerMetrics(), None, store)
        p.workers.append(worker)
        try:
            ids = [
                (await p.queue.submit("coder", {"size": size}, team="research")).task_id
                for size in sizes
            ]
            return await p.until_finished(ids, worker)
        finally:
            await store.aclose()

    # From the worker's first request on, IAM decides, but for that one: STS's
    # AssumeRoleWithWebIdentity is unsigned (the token is the proof), and moto would want
    # a signature on it.
    s3.check_iam_after(1)
    try:
        return run(redis, tmp_path, None, body)
    finally:
        s3.check_iam_after(float("inf"))


def test_a_large_output_is_stored_encrypted_in_the_pools_bucket(
    plans: dict[str, Plan],
    s3: S3,
    redis: RedisServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = _storage_as_planned(plans["staging"], s3)
    caplog.set_level(logging.DEBUG)
    small, large = _run(redis, tmp_path, s3, storage.bucket, storage.role_arn, [10, 5000])
    assert small.status is TaskStatus.SUCCEEDED, small.error
    assert large.status is TaskStatus.SUCCEEDED, large.error
    assert small.result == {"text": "x" * 10}, "a small output stays in the result"
    assert isinstance(large.result, dict)
    ref = large.result["artifact"]
    key = artifact_key("research", large.task_id, 1)
    assert key.startswith("research/"), "under the task's team"
    assert ref["bucket"] == storage.bucket and ref["key"] == key
    assert ref["encryption"] == "aws:kms"
    client = s3.client("s3")
    head = client.head_object(Bucket=storage.bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(storage.key_id), "the bucket's own key"
    assert head["VersionId"] == ref["version_id"]
    body = client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()
    assert json.loads(body) == {"text": "x" * 5000}
    assert ref["bytes"] == len(body)
    listed = client.list_objects_v2(Bucket=storage.bucket)["Contents"]
    assert [o["Key"] for o in listed] == [key]
    # The bucket refuses to be made public: the block from the plan holds.
    public = client.get_public_access_block(Bucket=storage.bucket)
    assert all(public["PublicAccessBlockConfiguration"].values())
    # The web identity token never reaches a log.
    assert WEB_IDENTITY_TOKEN not in caplog.text


def test_a_write_outside_the_pools_bucket_is_refused(
    plans: dict[str, Plan], s3: S3, redis: RedisServer, tmp_path: Path
) -> None:
    # The pool's role writes to another pool's bucket: IAM refuses, the task says why.
    storage = _storage_as_planned(plans["staging"], s3)
    (large,) = _run(redis, tmp_path, s3, storage.other_bucket, storage.role_arn, [5000])
    assert large.status is TaskStatus.FAILED
    assert large.error == "storage refused the artifact: AccessDenied"
    assert "Contents" not in s3.client("s3").list_objects_v2(Bucket=storage.other_bucket)


def test_moto_cannot_judge_the_tls_only_policy(plans: dict[str, Plan], s3: S3) -> None:
    """Why the buckets here lack the plan's TLS-only policy: under it moto refuses a write made
    over TLS, which S3 allows. When this fails, moto has learnt the condition: put the policy
    back in _bucket_as_planned."""
    plan = plans["staging"]
    storage = _storage_as_planned(plan, s3)
    client = s3.client("s3")
    client.put_object(Bucket=storage.bucket, Key="research/before", Body=b"{}")
    client.put_bucket_policy(Bucket=storage.bucket, Policy=_tls_only_policy(plan, POOL))
    assert s3.url.startswith("https://")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=storage.bucket, Key="research/after", Body=b"{}")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_the_worker_is_told_its_bucket_and_region(plans: dict[str, Plan]) -> None:
    deployments = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in plans["staging"].resources
        if r.is_kubernetes_object and r.inputs["kind"] == "Deployment"
    }
    (container,) = deployments[f"agent-{POOL}"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AGENTOPS_STORAGE_BUCKET"] == _planned_bucket(plans["staging"], POOL)
    assert env["AGENTOPS_STORAGE_REGION"] == REGION


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("storage_bucket", "Pool_Bucket", "storage_bucket"),
        ("storage_bucket", "a.b.c", "storage_bucket"),
        ("storage_region", "europe", "storage_region"),
        ("artifact_threshold_bytes", 0, "artifact_threshold_bytes"),
        ("storage_endpoint_url", "http://127.0.0.1:9", "must be https://"),
        ("storage_ca_file", "/no/such/ca.pem", "storage_ca_file"),
    ],
)
def test_bad_storage_settings_are_refused_naming_the_field(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    good: dict[str, object] = {"storage_bucket": "agentops-staging-p", "storage_region": REGION}
    with pytest.raises(ValidationError, match=message):
        settings(tmp_path, "w-1", None, **{**good, field: value})


def test_a_bucket_without_its_region_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="AGENTOPS_STORAGE_REGION is required"):
        settings(tmp_path, "w-1", None, storage_bucket="b-staging-p")


def test_a_worker_without_its_irsa_identity_is_refused(tmp_path: Path) -> None:
    s = settings(tmp_path, "w-1", None, storage_bucket="b-staging-p", storage_region=REGION)
    assert isinstance(s, WorkerSettings)
    with pytest.raises(ValueError, match=f"{ROLE_ENV} and {TOKEN_ENV}"):
        ArtifactStore(s, {})
