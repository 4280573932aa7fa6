"""Task artifacts in the pool's own bucket (`AGENTOPS_STORAGE_BUCKET`).

A task's output larger than `artifact_threshold_bytes` (as JSON) does not go into the task's
Redis hash: the worker writes it to `s3://<bucket>/<team>/<task id>/<attempt>/output.json`,
asking for SSE-KMS (the bucket's default key; asked explicitly, so a bucket whose default was
changed cannot store it in plain S3 encryption), and the task's result carries the object's
bucket, key, size and SHA-256 instead. A retried attempt writes its own key; versioning keeps
an overwritten object's old version for `storage.noncurrentVersionDays`.

The client is aiobotocore: the default credential chain finds IRSA's web identity (the pod's
AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE) and exchanges it at regional STS; the bucket is
addressed virtual-hosted at its regional endpoint — the two hosts the flow table allows the
pool (contracts.config.storage.storage_hosts).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import JsonValue

from contracts.settings.worker import WorkerSettings
from runtime.worker.handlers.base import DependencyUnavailable, TaskFailed

__all__ = ["ARTIFACT_KEY", "ArtifactStore", "artifact_key"]

# The result's field that names a stored output.
ARTIFACT_KEY = "artifact"
SSE = "aws:kms"


def artifact_key(team: str, task_id: str, attempt: int) -> str:
    """Where an attempt's output lives in the pool's bucket."""
    return f"{team}/{task_id}/{attempt}/output.json"


@dataclass(frozen=True)
class _Target:
    bucket: str
    region: str
    endpoint_url: str | None
    threshold: int


class ArtifactStore:
    """Writes outputs above the threshold to the bucket; one client for the worker's life."""

    def __init__(self, settings: WorkerSettings) -> None:
        assert settings.storage_bucket is not None and settings.storage_region is not None
        endpoint = settings.storage_endpoint_url
        self.target = _Target(
            settings.storage_bucket,
            settings.storage_region,
            None if endpoint is None else str(endpoint).rstrip("/"),
            settings.artifact_threshold_bytes,
        )
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def _s3(self) -> Any:
        if self._client is None:
            t = self.target
            # Virtual-hosted at the bucket's regional endpoint (the host the mesh allows);
            # another endpoint (a test's server on 127.0.0.1) is addressed by path.
            style = "virtual" if t.endpoint_url is None else "path"
            config = AioConfig(
                signature_version="s3v4",
                s3={"addressing_style": style},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            )
            self._client = await self._stack.enter_async_context(
                get_session().create_client(
                    "s3", region_name=t.region, endpoint_url=t.endpoint_url, config=config
                )
            )
        return self._client

    async def keep(self, output: JsonValue, team: str, task_id: str, attempt: int) -> JsonValue:
        """The output as the task's result: itself when small, else a reference to the stored
        object. DependencyUnavailable when S3 does not answer, TaskFailed when it refuses."""
        body = json.dumps(output, allow_nan=False).encode()
        if len(body) <= self.target.threshold:
            return output
        key = artifact_key(team, task_id, attempt)
        try:
            s3 = await self._s3()
            stored = await s3.put_object(
                Bucket=self.target.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                ServerSideEncryption=SSE,
            )
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "error")
            status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "InternalError"}:
                raise DependencyUnavailable(f"storage answered {code}") from None
            raise TaskFailed(f"storage refused the artifact: {code}") from None
        except (BotoCoreError, OSError) as err:
            raise DependencyUnavailable(f"storage unreachable: {type(err).__name__}") from None
        return {
            ARTIFACT_KEY: {
                "bucket": self.target.bucket,
                "key": key,
                "bytes": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "version_id": stored.get("VersionId"),
                "encryption": stored.get("ServerSideEncryption"),
            }
        }

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._client = None
