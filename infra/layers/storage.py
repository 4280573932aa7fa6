"""Agent storage: one S3 bucket per agent pool under one customer-managed KMS key.

Each bucket: default encryption aws:kms with the platform's key (S3 bucket keys on), the public
access block with all four switches on, versioning (old versions expire after
`storage.noncurrentVersionDays`) and a bucket policy that refuses every request not made over
TLS. Each pool's IRSA role gets `pool_policies[pool]`: object read/write/list on its own bucket
only and the KMS calls S3 needs on that key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from contracts.config import PlatformConfig
from infra.layers.shared import rotating_key
from infra.layers.tagging import Tagging

__all__ = ["Storage", "StorageArgs", "pool_access_policy", "tls_only_policy"]

OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject")
BUCKET_ACTIONS = ("s3:ListBucket",)
KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def pool_access_policy(bucket: str, key_arn: str) -> str:
    """The pool role's inline policy: its own bucket's objects, and the key that encrypts them."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PoolBucketList",
                    "Effect": "Allow",
                    "Action": list(BUCKET_ACTIONS),
                    "Resource": bucket_arn(bucket),
                },
                {
                    "Sid": "PoolBucketObjects",
                    "Effect": "Allow",
                    "Action": list(OBJECT_ACTIONS),
                    "Resource": f"{bucket_arn(bucket)}/*",
                },
                {
                    "Sid": "PoolBucketKey",
                    "Effect": "Allow",
                    "Action": list(KEY_ACTIONS),
                    "Resource": key_arn,
                },
            ],
        },
        sort_keys=True,
    )


def tls_only_policy(bucket: str) -> str:
    """The bucket policy: every request without TLS is denied, whoever makes it."""
    arn = bucket_arn(bucket)
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class StorageArgs:
    config: PlatformConfig
    tagging: Tagging


class Storage(pulumi.ComponentResource):
    # Pool name → the inline policy its IRSA role gets.
    pool_policies: dict[str, pulumi.Output[str]]
    key_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Storage", name, None, opts)
        cfg = args.config
        key = rotating_key(
            f"{name}-key", "agent pools' S3 buckets", args.tagging, f"{name}-key", parent=self
        )
        self.key_arn = key.arn
        self.pool_policies = {}
        for pool in cfg.agents.pools:
            bucket = cfg.pool_bucket(pool.name)
            assert bucket is not None  # the layer is built only when storage is enabled
            self._bucket(name, pool.name, bucket, key, cfg.storage.noncurrent_version_days, args)
            self.pool_policies[pool.name] = key.arn.apply(
                lambda arn, b=bucket: pool_access_policy(b, arn)
            )
        self.register_outputs({"key_arn": self.key_arn})

    def _bucket(
        self,
        prefix: str,
        pool: str,
        bucket_name: str,
        key: aws.kms.Key,
        noncurrent_days: int,
        args: StorageArgs,
    ) -> None:
        name = f"{prefix}-{pool}"
        bucket = aws.s3.Bucket(
            name,
            bucket=bucket_name,
            tags=args.tagging(name),
            opts=pulumi.ResourceOptions(parent=self),
        )
        child = pulumi.ResourceOptions(parent=bucket)
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms", kms_master_key_id=key.arn
                    ),
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-old-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=noncurrent_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=7
                    ),
                )
            ],
            opts=pulumi.ResourceOptions(parent=bucket, depends_on=[versioning]),
        )
        # After the block: a policy put before it could briefly be evaluated as public.
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=tls_only_policy(bucket_name),
            opts=pulumi.ResourceOptions(parent=bucket, depends_on=[block]),
        )
