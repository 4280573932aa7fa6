"""Task artifacts in the pool's own bucket (`AGENTOPS_STORAGE_BUCKET`).

A task's output larger than `artifact_threshold_bytes` (as JSON) does not go into the task's
Redis hash: the worker writes it to `s3://<bucket>/<team>/<task id>/<attempt>/output.json`,
asking for SSE-KMS (the bucket's default key; asked explicitly, so a bucket whose default was
changed cannot store it in plain S3 encryption), and the task's result carries the object's
bucket, key, size, SHA-256, version and encryption instead. A retried attempt writes its own
key; versioning keeps an overwritten object's old version for `storage.noncurrentVersionDays`.

The client is the worker's httpx with httpx-auth's SigV4 signer (the image's venv has no room
for botocore's 20+ MB of service models). Credentials are IRSA's: the web identity token EKS
mounts for the pool's service account (`AWS_WEB_IDENTITY_TOKEN_FILE`, re-read at each exchange,
the kubelet rotates it) is exchanged for the pool role's (`AWS_ROLE_ARN`) temporary keys at
regional STS (`AssumeRoleWithWebIdentity`, the token in the POST body, never in a URL), renewed
five minutes before they expire. The bucket is addressed virtual-hosted at its regional
endpoint: S3 and STS are the two hosts the flow table allows the pool
(`contracts.config.storage.storage_hosts`).
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import httpx
from httpx_auth import AWS4Auth
from pydantic import JsonValue

from contracts.config.storage import storage_hosts
from contracts.settings.worker import WorkerSettings
from runtime.worker.handlers.base import DependencyUnavailable, TaskFailed

__all__ = [
    "ARTIFACT_KEY",
    "ROLE_ENV",
    "TOKEN_ENV",
    "ArtifactStore",
    "Credentials",
    "Endpoints",
    "artifact_key",
    "parse_credentials",
    "s3_error_code",
]

# The result's field that names a stored output.
ARTIFACT_KEY: Final = "artifact"
SSE: Final = "aws:kms"
# What EKS's pod identity webhook sets for a service account annotated with a role.
ROLE_ENV: Final = "AWS_ROLE_ARN"
TOKEN_ENV: Final = "AWS_WEB_IDENTITY_TOKEN_FILE"  # noqa: S105 - a variable name
_STS_NS: Final = "{https://sts.amazonaws.com/doc/2011-06-15/}"
_RENEW_BEFORE_S: Final = 300.0
# S3 codes that are S3's own trouble, not a refusal of this request.
_TRANSIENT: Final = frozenset({"SlowDown", "ServiceUnavailable", "InternalError"})


def artifact_key(team: str, task_id: str, attempt: int) -> str:
    """Where an attempt's output lives in the pool's bucket."""
    return f"{team}/{task_id}/{attempt}/output.json"


@dataclass(frozen=True)
class Endpoints:
    """Where the bucket's objects and STS are, from the settings (pure)."""

    bucket: str
    region: str
    endpoint_url: str | None = None

    def object_url(self, key: str) -> str:
        if self.endpoint_url is None:
            s3_host, _ = storage_hosts(self.bucket, self.region)
            return f"https://{s3_host}/{key}"
        # One test server for every service: the bucket goes into the path.
        return f"{self.endpoint_url}/{self.bucket}/{key}"

    def sts_url(self) -> str:
        if self.endpoint_url is None:
            _, sts_host = storage_hosts(self.bucket, self.region)
            return f"https://{sts_host}/"
        return f"{self.endpoint_url}/"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: float  # epoch seconds

    def fresh(self, now: float) -> bool:
        return now < self.expires_at - _RENEW_BEFORE_S


def parse_credentials(body: bytes) -> Credentials:
    """The temporary keys in STS's AssumeRoleWithWebIdentity answer."""
    root = ET.fromstring(body)  # noqa: S314 - STS's answer over verified TLS
    found = root.find(f"{_STS_NS}AssumeRoleWithWebIdentityResult/{_STS_NS}Credentials")
    if found is None:
        raise ValueError("STS answered without credentials")

    def text(name: str) -> str:
        value = found.findtext(f"{_STS_NS}{name}")
        if not value:
            raise ValueError(f"STS answered without {name}")
        return value

    expires = datetime.fromisoformat(text("Expiration").replace("Z", "+00:00"))
    return Credentials(
        text("AccessKeyId"), text("SecretAccessKey"), text("SessionToken"), expires.timestamp()
    )


def s3_error_code(body: bytes) -> str:
    """The `<Code>` of an S3/STS error document (`error` when there is none)."""
    try:
        root = ET.fromstring(body)  # noqa: S314 - the endpoint's answer over verified TLS
    except ET.ParseError:
        return "error"
    code = next((e.text for e in root.iter() if e.tag.rpartition("}")[2] == "Code"), None)
    return code or "error"


class WebIdentity:
    """IRSA: the pod's projected token exchanged at STS for the pool role's keys."""

    def __init__(
        self, http: httpx.AsyncClient, url: str, environ: Mapping[str, str], session: str
    ) -> None:
        role, token_file = environ.get(ROLE_ENV), environ.get(TOKEN_ENV)
        if not role or not token_file:
            raise ValueError(
                f"agent storage needs the pool's IRSA identity: {ROLE_ENV} and {TOKEN_ENV} "
                "(EKS sets both for a service account annotated with the pool's role)"
            )
        self._http, self._url, self._role = http, url, role
        self._token_file = Path(token_file)
        self._session = session[:64]
        self._current: Credentials | None = None

    async def credentials(self) -> Credentials:
        current = self._current
        if current is not None and current.fresh(time.time()):
            return current
        form = {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": self._role,
            "RoleSessionName": self._session,
            "WebIdentityToken": self._token_file.read_text().strip(),
        }
        answer = await self._http.post(self._url, data=form)
        if answer.status_code >= 500:
            raise DependencyUnavailable(f"STS answered {answer.status_code}")
        if answer.status_code != 200:
            raise TaskFailed(f"storage credentials refused: {s3_error_code(answer.content)}")
        self._current = parse_credentials(answer.content)
        return self._current


class ArtifactStore:
    """Writes outputs above the threshold to the bucket; one HTTP client for the worker's life."""

    def __init__(self, settings: WorkerSettings, environ: Mapping[str, str] = os.environ) -> None:
        assert settings.storage_bucket is not None and settings.storage_region is not None
        endpoint = settings.storage_endpoint_url
        self.endpoints = Endpoints(
            settings.storage_bucket,
            settings.storage_region,
            None if endpoint is None else str(endpoint).rstrip("/"),
        )
        self.threshold = settings.artifact_threshold_bytes
        ca = settings.storage_ca_file
        self._http = httpx.AsyncClient(
            verify=True if ca is None else ssl.create_default_context(cafile=str(ca)),
            timeout=httpx.Timeout(30.0, connect=5.0),
        )
        self._identity = WebIdentity(
            self._http, self.endpoints.sts_url(), environ, f"agentops-{settings.agent_id}"
        )

    async def keep(self, output: JsonValue, team: str, task_id: str, attempt: int) -> JsonValue:
        """The output as the task's result: itself when small, else a reference to the stored
        object. DependencyUnavailable when S3 does not answer, TaskFailed when it refuses."""
        body = json.dumps(output, allow_nan=False).encode()
        if len(body) <= self.threshold:
            return output
        key = artifact_key(team, task_id, attempt)
        try:
            stored = await self._put(key, body)
        except httpx.TransportError as err:
            raise DependencyUnavailable(f"storage unreachable: {type(err).__name__}") from None
        return {
            ARTIFACT_KEY: {
                "bucket": self.endpoints.bucket,
                "key": key,
                "bytes": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "version_id": stored.headers.get("x-amz-version-id"),
                "encryption": stored.headers.get("x-amz-server-side-encryption"),
            }
        }

    async def _put(self, key: str, body: bytes) -> httpx.Response:
        keys = await self._identity.credentials()
        signer = AWS4Auth(
            keys.access_key_id,
            keys.secret_access_key,
            self.endpoints.region,
            "s3",
            security_token=keys.session_token,
        )
        answer = await self._http.put(
            self.endpoints.object_url(key),
            content=body,
            headers={"content-type": "application/json", "x-amz-server-side-encryption": SSE},
            auth=signer,
        )
        if answer.status_code == 200:
            return answer
        code = s3_error_code(answer.content)
        if answer.status_code >= 500 or code in _TRANSIENT:
            raise DependencyUnavailable(f"storage answered {code}")
        raise TaskFailed(f"storage refused the artifact: {code}")

    async def aclose(self) -> None:
        await self._http.aclose()
