"""AWS: a private, encrypted, logged cluster; locked-down nodes, registries, caches and keys."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    ReportViolation,
    ResourceValidationArgs,
    StackValidationArgs,
)

from policies.common import ENVIRONMENT_SCHEMA, Report, environment, resource_policy, stack_policy

__all__ = ["POLICIES"]

_WORLD = {"0.0.0.0/0", "::/0"}
_REQUIRED_LOGS = {"api", "audit", "authenticator"}


Check = Callable[[ResourceValidationArgs, Mapping[str, Any], Report], None]
Validate = Callable[[ResourceValidationArgs, Report], None]


def _of_type(resource_type: str) -> Callable[[Check], Validate]:
    """Decorator: run the check only on one resource type."""

    def wrap(check: Check) -> Validate:
        def validate(args: ResourceValidationArgs, report: Report) -> None:
            if args.resource_type == resource_type:
                check(args, args.props, report)

        return validate

    return wrap


@_of_type("aws:eks/cluster:Cluster")
def _endpoint(args: ResourceValidationArgs, props: Mapping[str, Any], report: Report) -> None:
    vpc = props.get("vpcConfig") or {}
    public = vpc.get("endpointPublicAccess", True)
    if public and environment(args) == "prod":
        report("the prod API endpoint is public; prod uses the private endpoint only")
    cidrs = vpc.get("publicAccessCidrs")
    if public and (not cidrs or _WORLD & set(cidrs)):
        report(f"the public API endpoint is open to the internet (publicAccessCidrs={cidrs})")


@_of_type("aws:eks/cluster:Cluster")
def _secrets_encryption(
    args: ResourceValidationArgs, props: Mapping[str, Any], report: Report
) -> None:
    configs = props.get("encryptionConfig")
    configs = configs if isinstance(configs, list) else [configs] if configs else []
    if not any(
        "secrets" in (c.get("resources") or []) and (c.get("provider") or {}).get("keyArn")
        for c in configs
    ):
        report("Kubernetes Secrets are not envelope-encrypted with a KMS key")


@_of_type("aws:eks/cluster:Cluster")
def _logging(args: ResourceValidationArgs, props: Mapping[str, Any], report: Report) -> None:
    missing = _REQUIRED_LOGS - set(props.get("enabledClusterLogTypes") or [])
    if missing:
        report(f"control-plane logs {sorted(missing)} are off")


@_of_type("aws:eks/addon:Addon")
def _cni_network_policy(
    args: ResourceValidationArgs, props: Mapping[str, Any], report: Report
) -> None:
    if props.get("addonName") != "vpc-cni":
        return
    raw = props.get("configurationValues") or "{}"
    try:
        values = json.loads(raw) if isinstance(raw, str) else {}
    except json.JSONDecodeError:
        values = {}
    if str(values.get("enableNetworkPolicy", "false")).lower() != "true":
        report(
            "the vpc-cni add-on runs without network policy enforcement: every NetworkPolicy "
            f"of the cluster is inert (configurationValues={raw!r})"
        )


def _imdsv2(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type not in (
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/instance:Instance",
    ):
        return
    if (args.props.get("metadataOptions") or {}).get("httpTokens") != "required":
        report("instance metadata allows IMDSv1 (httpTokens is not 'required')")


@_of_type("aws:ecr/repository:Repository")
def _scan(args: ResourceValidationArgs, props: Mapping[str, Any], report: Report) -> None:
    if (props.get("imageScanningConfiguration") or {}).get("scanOnPush") is not True:
        report("images are not scanned on push")


@_of_type("aws:ecr/repository:Repository")
def _immutable(args: ResourceValidationArgs, props: Mapping[str, Any], report: Report) -> None:
    if props.get("imageTagMutability") != "IMMUTABLE":
        report("image tags can be overwritten (imageTagMutability is not IMMUTABLE)")


@_of_type("aws:elasticache/replicationGroup:ReplicationGroup")
def _elasticache(args: ResourceValidationArgs, props: Mapping[str, Any], report: Report) -> None:
    if props.get("transitEncryptionEnabled") is not True:
        report("Redis traffic is not encrypted in transit")
    if props.get("atRestEncryptionEnabled") is not True:
        report("Redis data is not encrypted at rest")
    if not props.get("authToken"):
        report("Redis accepts clients without an auth token")


@_of_type("aws:elasticache/replicationGroup:ReplicationGroup")
def _cluster_replicas(
    args: ResourceValidationArgs, props: Mapping[str, Any], report: Report
) -> None:
    if environment(args) != "prod" or props.get("clusterMode") != "enabled":
        return
    if int(props.get("replicasPerNodeGroup") or 0) < 1:
        report(
            "Redis cluster mode without replicas (replicasPerNodeGroup 0): a lost node loses "
            "its shard's accepted tasks and usage, and nothing can confirm a write"
        )


@_of_type("aws:kms/key:Key")
def _rotation(args: ResourceValidationArgs, props: Mapping[str, Any], report: Report) -> None:
    symmetric = props.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    if symmetric and props.get("enableKeyRotation") is not True:
        report("automatic key rotation is off")


def _world_ingress(args: ResourceValidationArgs, report: Report) -> None:
    props = args.props
    if args.resource_type == "aws:ec2/securityGroup:SecurityGroup":
        rules = props.get("ingress") or []
    elif args.resource_type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        rules = [props] if props.get("type") == "ingress" else []
    elif args.resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        rules = [{"cidrBlocks": [props.get("cidrIpv4")], "ipv6CidrBlocks": [props.get("cidrIpv6")]}]
    else:
        return
    for rule in rules:
        opened = _WORLD & set((rule.get("cidrBlocks") or []) + (rule.get("ipv6CidrBlocks") or []))
        if opened:
            ports = f"{rule.get('fromPort')}-{rule.get('toPort')}"
            report(f"ingress from {sorted(opened)} on ports {ports}")


@_of_type("aws:s3/bucket:Bucket")
def _bucket_acl(args: ResourceValidationArgs, props: Mapping[str, Any], report: Report) -> None:
    if str(props.get("acl", "private")).startswith("public"):
        report(f"the bucket ACL is {props.get('acl')}")


def _buckets(args: StackValidationArgs, report: ReportViolation) -> None:
    buckets = [r for r in args.resources if r.resource_type == "aws:s3/bucket:Bucket"]
    for bucket in buckets:
        blocked = encrypted = kms = False
        for r in args.resources:
            if bucket not in r.dependencies:
                continue
            if r.resource_type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
                blocked = all(
                    r.props.get(k) is True
                    for k in (
                        "blockPublicAcls",
                        "blockPublicPolicy",
                        "ignorePublicAcls",
                        "restrictPublicBuckets",
                    )
                )
            if r.resource_type.startswith("aws:s3/bucketServerSideEncryptionConfiguration:"):
                encrypted = True
                kms = kms or _kms_encrypted(r.props)
        if not blocked:
            report(f"bucket {bucket.name} has no full public access block", bucket.urn)
        if not encrypted:
            report(f"bucket {bucket.name} has no server-side encryption configuration", bucket.urn)
        elif not kms:
            report(
                f"bucket {bucket.name} is not encrypted with a KMS key (sseAlgorithm aws:kms "
                "and a kmsMasterKeyId)",
                bucket.urn,
            )


def _kms_encrypted(props: Mapping[str, Any]) -> bool:
    """Every default-encryption rule is aws:kms with a key of our own."""
    rules = props.get("rules") or []
    defaults = [r.get("applyServerSideEncryptionByDefault") or {} for r in rules]
    return bool(defaults) and all(
        d.get("sseAlgorithm") in ("aws:kms", "aws:kms:dsse") and d.get("kmsMasterKeyId")
        for d in defaults
    )


@_of_type("aws:rds/instance:Instance")
def _rds(args: ResourceValidationArgs, props: Mapping[str, Any], report: Report) -> None:
    if props.get("storageEncrypted") is not True:
        report("the database's storage is not encrypted (storageEncrypted is not true)")
    elif not props.get("kmsKeyId"):
        report("the database's storage is not encrypted with a customer-managed KMS key (kmsKeyId)")
    if props.get("publiclyAccessible") is True:
        report("the database is publicly accessible")


@_of_type("aws:rds/instance:Instance")
def _rds_prod(args: ResourceValidationArgs, props: Mapping[str, Any], report: Report) -> None:
    if environment(args) != "prod":
        return
    if props.get("multiAz") is not True:
        report("the prod database has no standby in another AZ (multiAz is not true)")
    if props.get("deletionProtection") is not True:
        report("the prod database can be deleted (deletionProtection is not true)")


IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"


def _one_role_per_service_account(args: StackValidationArgs, report: ReportViolation) -> None:
    holders: dict[str, str] = {}
    for sa in args.resources:
        if sa.resource_type != "kubernetes:core/v1:ServiceAccount":
            continue
        meta = sa.props.get("metadata") or {}
        role = (meta.get("annotations") or {}).get(IRSA_ANNOTATION)
        if not isinstance(role, str):
            continue
        who = f"{meta.get('namespace')}/{meta.get('name')}"
        if role in holders:
            report(
                f"service accounts {holders[role]} and {who} share the IAM role {role}: "
                "their pods hold the same AWS credentials",
                sa.urn,
            )
        else:
            holders[role] = who


def _node_subnets(args: StackValidationArgs, report: ReportViolation) -> None:
    for group in args.resources:
        if group.resource_type != "aws:eks/nodeGroup:NodeGroup":
            continue
        for subnet in group.dependencies:
            if subnet.resource_type != "aws:ec2/subnet:Subnet":
                continue
            tags = subnet.props.get("tags") or {}
            if subnet.props.get("mapPublicIpOnLaunch") is True or "kubernetes.io/role/elb" in tags:
                report(
                    f"node group {group.name} is placed in public subnet {subnet.name}", group.urn
                )


POLICIES = [
    resource_policy(
        "eks-endpoint-access",
        "The EKS API endpoint is private in prod; where it is public elsewhere, an allow-list "
        "narrower than the internet guards it.",
        "Set cluster.endpoint.publicAccess: false in prod; elsewhere list publicAccessCidrs.",
        _endpoint,
        config=ENVIRONMENT_SCHEMA,
    ),
    resource_policy(
        "eks-secrets-encryption",
        "Kubernetes Secrets are envelope-encrypted with a customer-managed KMS key.",
        "Give the cluster an encryptionConfig for resources [secrets] with a KMS key ARN.",
        _secrets_encryption,
    ),
    resource_policy(
        "eks-control-plane-logging",
        "The API, audit and authenticator logs of the control plane go to CloudWatch.",
        "Keep cluster.logTypes at least api, audit, authenticator.",
        _logging,
    ),
    resource_policy(
        "eks-vpc-cni-network-policy",
        "The vpc-cni add-on enforces NetworkPolicies (its network policy agent is on), so the "
        "default deny and the flow table's allows hold on EKS.",
        'Set the add-on\'s configurationValues to {"enableNetworkPolicy": "true"}.',
        _cni_network_policy,
    ),
    resource_policy(
        "ec2-imdsv2-required",
        "Nodes require IMDSv2 session tokens, which stops SSRF from reading instance credentials.",
        "Set metadataOptions.httpTokens: required on the launch template.",
        _imdsv2,
    ),
    resource_policy(
        "ecr-scan-on-push",
        "Every pushed image is scanned for vulnerabilities.",
        "Set imageScanningConfiguration.scanOnPush: true.",
        _scan,
    ),
    resource_policy(
        "ecr-immutable-tags",
        "Image tags cannot be overwritten, so a tag always names the image that was reviewed.",
        "Set imageTagMutability: IMMUTABLE.",
        _immutable,
    ),
    resource_policy(
        "elasticache-encryption-and-auth",
        "ElastiCache encrypts in transit and at rest and requires an auth token.",
        "Set transitEncryptionEnabled, atRestEncryptionEnabled and an authToken.",
        _elasticache,
    ),
    resource_policy(
        "elasticache-cluster-replicas-prod",
        "In prod a Redis Cluster has a replica per shard: failover without loss, WAIT-confirmed "
        "acceptance.",
        "Set redis.elasticache.replicasPerNodeGroup ≥ 1.",
        _cluster_replicas,
        config=ENVIRONMENT_SCHEMA,
    ),
    resource_policy(
        "kms-key-rotation",
        "Customer-managed symmetric KMS keys rotate automatically.",
        "Set enableKeyRotation: true (infra.layers.shared.rotating_key does).",
        _rotation,
    ),
    resource_policy(
        "ec2-no-world-ingress",
        "No security group admits traffic from the whole internet.",
        "Allow the specific security groups or CIDRs that need access.",
        _world_ingress,
    ),
    resource_policy(
        "s3-no-public-acl",
        "No S3 bucket has a public ACL: objects are shared through signed URLs only.",
        "Remove the public ACL; share through signed URLs or a CDN origin access control.",
        _bucket_acl,
    ),
    stack_policy(
        "s3-private-and-encrypted",
        "Every S3 bucket (agent storage, flow logs, backups) has a full public access block and "
        "default encryption with a customer-managed KMS key.",
        "Add a BucketPublicAccessBlock (all four true) and a "
        "BucketServerSideEncryptionConfiguration with sseAlgorithm aws:kms and the key's ARN.",
        _buckets,
    ),
    resource_policy(
        "rds-encrypted-and-private",
        "Every RDS instance encrypts its storage and is not reachable from the internet.",
        "Set storageEncrypted: true with a kmsKeyId and publiclyAccessible: false.",
        _rds,
    ),
    resource_policy(
        "rds-multi-az-prod",
        "In prod the database has a synchronous standby in another AZ and cannot be deleted by "
        "accident.",
        "Set database.multiAz: true (infra.layers.database sets deletion protection in prod).",
        _rds_prod,
        config=ENVIRONMENT_SCHEMA,
    ),
    stack_policy(
        "irsa-role-per-service-account",
        "No two service accounts assume the same IAM role: each pool (and service) holds its own "
        "AWS credentials, scoped to its own bucket and key.",
        "Give each ServiceAccount its own IrsaRole (infra.layers.irsa) instead of reusing an ARN.",
        _one_role_per_service_account,
    ),
    stack_policy(
        "eks-node-groups-private-subnets",
        "Node groups live in private subnets only.",
        "Pass the network layer's private subnet ids to the node groups.",
        _node_subnets,
    ),
]
