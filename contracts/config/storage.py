"""Agent storage on AWS: one S3 bucket per agent pool, encrypted with the platform's own KMS key.

One bucket per pool, not one shared bucket with per-pool prefixes: the bucket is the unit S3
scopes its public access block, default encryption, versioning and bucket policy to, so each
pool's IRSA role is granted a whole bucket (`arn:aws:s3:::<bucket>` and `…/*`) and no prefix
condition has to be right for one pool to stay out of another's objects. Buckets cost nothing
by themselves; deleting a pool's data is deleting its bucket.
"""

from __future__ import annotations

from typing import Final, Self

from pydantic import Field, model_validator

from contracts.config.base import ConfigModel, RuleViolation

__all__ = [
    "BUCKET_NAME_MAX",
    "BUCKET_NAME_PATTERN",
    "StorageConfig",
    "pool_bucket_name",
    "storage_hosts",
]

# S3's limit on a bucket name.
BUCKET_NAME_MAX: Final = 63
# A bucket name the worker can address virtual-hosted over TLS: S3's rule (3-63 lower-case
# letters, digits, hyphens) without dots, which would not match S3's wildcard certificate.
BUCKET_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"


def pool_bucket_name(bucket_prefix: str, environment: str, pool: str) -> str:
    """The one name of a pool's bucket: the IRSA policy, the worker's env and the bucket agree."""
    return f"{bucket_prefix}-{environment}-{pool}"


def storage_hosts(bucket: str, region: str) -> tuple[str, str]:
    """The hosts a worker calls to use its bucket: the bucket's regional virtual-hosted S3
    endpoint and regional STS (IRSA's AssumeRoleWithWebIdentity; EKS sets regional STS).

    KMS is not among them: for SSE-KMS, S3 itself asks KMS for the data key on the caller's
    behalf (the caller needs the KMS rights, not a connection). The worker's client and the
    flow table both take the names from here.
    """
    return f"{bucket}.s3.{region}.amazonaws.com", f"sts.{region}.amazonaws.com"


class StorageConfig(ConfigModel):
    enabled: bool = Field(
        default=False,
        description=(
            "one S3 bucket per agent pool (AWS stacks only; the local stack has no agent storage)"
        ),
    )
    bucket_prefix: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$",
        description=(
            "globally unique start of every bucket name: <bucketPrefix>-<environment>-<pool>"
        ),
    )
    noncurrent_version_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="days an overwritten or deleted object's old version is kept (versioning)",
    )

    @model_validator(mode="after")
    def _prefix_when_enabled(self) -> Self:
        if self.enabled and self.bucket_prefix is None:
            raise RuleViolation(
                "bucketPrefix", None, "required when storage is enabled (bucket names are global)"
            )
        return self
