"""The worker uses its pool's bucket: an output above the threshold is written to
`<team>/<task id>/<attempt>/output.json` with SSE-KMS and the task's result names the object;
a small one stays in the result. The S3 is moto's server (PyPI `moto[server]`), started here on
127.0.0.1 and stopped by PID, with the bucket set up as the staging plan renders it: the
storage key, `aws:kms` default encryption with bucket keys, the full public access block,
versioning and the TLS-only bucket policy, each read out of the real plan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.plan.document import Plan
from runtime.manager.queue import TaskRecord, TaskStatus
from runtime.manager.registry import AgentProfile
from runtime.worker.artifacts import ArtifactStore, artifact_key
from runtime.worker.handlers.base import HandlerResult, TaskContext
from runtime.worker.manager_client import ManagerClient
from runtime.worker.metrics import WorkerMetrics
from runtime.worker.runner import Worker
from tests.runtime.worker.test_runner import Platform, run, settings
from tests.servers import RedisServer, free_port, redis_server

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's, for the signature only
    "AWS_DEFAULT_REGION": "eu-west-1",
}
POOL = "code-generator"


@dataclass
class S3:
    url: str
    process: subprocess.Popen[bytes]

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name="eu-west-1", **_keys())


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = Path(sys.executable).parent / "moto_server"
    with (tmp_path / "moto.log").open("ab") as log:
        process = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        yield S3(url, process)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=20)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


def _rendered(plan: Plan, kind: str, name: str) -> dict[str, Any]:
    (found,) = [r.inputs for r in plan.resources if r.type == kind and r.name == name]
    return found


def _bucket_as_planned(plans: dict[str, Plan], s3: S3) -> tuple[str, str]:
    """Create the pool's bucket on moto with the settings of the staging plan; its name and
    the KMS key's id."""
    plan = plans["staging"]
    (bucket,) = [
        r.inputs["bucket"]
        for r in plan.resources
        if r.type == "aws:s3/bucket:Bucket" and r.inputs["bucket"].endswith(f"-{POOL}")
    ]
    name = f"storage-{POOL}"
    block = _rendered(
        plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"{name}-public-access"
    )
    encryption = _rendered(
        plan,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        f"{name}-encryption",
    )
    versioning = _rendered(plan, "aws:s3/bucketVersioning:BucketVersioning", f"{name}-versioning")
    policy = _rendered(plan, "aws:s3/bucketPolicy:BucketPolicy", f"{name}-tls-only")
    key_id = s3.client("kms").create_key(Description="agent pools' S3 buckets")["KeyMetadata"][
        "KeyId"
    ]
    client = s3.client("s3")
    client.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
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
                    # The plan's key is a stand-in ARN: moto's key takes its place.
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
    client.put_bucket_policy(Bucket=bucket, Policy=policy["policy"])
    return bucket, key_id


class Writer:
    """A handler whose output is as large as the payload asks."""

    async def __call__(self, task: TaskContext) -> HandlerResult:
        assert isinstance(task.payload, dict)
        return HandlerResult({"text": "x" * int(str(task.payload["size"]))})


def _run(redis: RedisServer, tmp_path: Path, s3: S3, bucket: str) -> list[TaskRecord]:
    async def body(p: Platform) -> list[TaskRecord]:
        s = settings(
            tmp_path,
            "w-1",
            None,
            storage_bucket=bucket,
            storage_region="eu-west-1",
            storage_endpoint_url=s3.url,
            artifact_threshold_bytes=1024,
        )
        await p.registry.register(AgentProfile("w-1", "coder", capacity=8))
        store = ArtifactStore(s)
        worker = Worker(s, p.redis, ManagerClient(s), Writer(), WorkerMetrics(), None, store)
        p.workers.append(worker)
        try:
            ids = [
                (await p.queue.submit("coder", {"size": size}, team="research")).task_id
                for size in (10, 5000)
            ]
            return await p.until_finished(ids, worker)
        finally:
            await store.aclose()

    return run(redis, tmp_path, None, body)


def test_a_large_output_is_stored_encrypted_in_the_pools_bucket(
    plans: dict[str, Plan], s3: S3, redis: RedisServer, tmp_path: Path
) -> None:
    bucket, key_id = _bucket_as_planned(plans, s3)
    small, large = _run(redis, tmp_path, s3, bucket)
    assert small.status is TaskStatus.SUCCEEDED and large.status is TaskStatus.SUCCEEDED
    assert small.result == {"text": "x" * 10}, "a small output stays in the result"
    assert isinstance(large.result, dict)
    ref = large.result["artifact"]
    key = artifact_key("research", large.task_id, 1)
    assert ref["bucket"] == bucket and ref["key"] == key
    assert ref["encryption"] == "aws:kms"
    client = s3.client("s3")
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id), "the bucket's own key"
    assert head["VersionId"] == ref["version_id"]
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert json.loads(body) == {"text": "x" * 5000}
    assert ref["bytes"] == len(body)
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    # The bucket refuses to be made public: the block from the plan holds.
    public = client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(public.values()) and len(public) == 4


def test_a_refused_write_fails_the_task_and_names_the_error(
    plans: dict[str, Plan], s3: S3, redis: RedisServer, tmp_path: Path
) -> None:
    # No such bucket (another pool's name, say): S3 refuses and the task says why.
    _bucket_as_planned(plans, s3)
    _, large = _run(redis, tmp_path, s3, "agentops-staging-no-such-pool")
    assert large.status is TaskStatus.FAILED
    assert large.error == "storage refused the artifact: NoSuchBucket"


def test_the_worker_is_told_its_bucket_and_region(plans: dict[str, Plan]) -> None:
    deployments = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in plans["staging"].resources
        if r.is_kubernetes_object and r.inputs["kind"] == "Deployment"
    }
    (container,) = deployments[f"agent-{POOL}"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AGENTOPS_STORAGE_BUCKET"].endswith(f"-staging-{POOL}")
    assert env["AGENTOPS_STORAGE_REGION"] == "eu-west-1"


def test_a_bucket_without_its_region_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="AGENTOPS_STORAGE_REGION is required"):
        settings(tmp_path, "w-1", None, storage_bucket="b-staging-p")
