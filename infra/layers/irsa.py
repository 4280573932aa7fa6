"""IAM roles for service accounts: trust scoped to exactly one namespace + service account."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

__all__ = ["IrsaRole", "IrsaRoleArgs", "OidcIdentity", "policy_role", "trust_policy"]


def trust_policy(provider_arn: str, issuer_url: str, namespace: str, service_account: str) -> str:
    """The assume-role policy: only `system:serviceaccount:<ns>:<sa>` with audience STS."""
    issuer = issuer_url.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class OidcIdentity:
    """The cluster's OIDC provider, which every IRSA role trusts."""

    provider_arn: pulumi.Input[str]
    issuer_url: pulumi.Input[str]


@dataclass(frozen=True)
class IrsaRoleArgs:
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    namespace: str
    service_account: str
    managed_policy_arns: Sequence[str] = ()
    inline_policy: pulumi.Input[str] | None = None
    tags: dict[str, str] | None = None


class IrsaRole(pulumi.ComponentResource):
    """A role one Kubernetes service account assumes through the cluster's OIDC provider."""

    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: IrsaRoleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:iam:IrsaRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy = pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer_url).apply(
            lambda v: trust_policy(v[0], v[1], args.namespace, args.service_account)
        )
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=policy,
            description=f"IRSA for {args.namespace}/{args.service_account}",
            tags=args.tags,
            opts=child,
        )
        for i, arn in enumerate(args.managed_policy_arns):
            aws.iam.RolePolicyAttachment(
                f"{name}-managed-{i}", role=role.name, policy_arn=arn, opts=child
            )
        if args.inline_policy is not None:
            aws.iam.RolePolicy(
                f"{name}-inline", role=role.id, policy=args.inline_policy, opts=child
            )
        self.role_arn = role.arn
        self.register_outputs({"role_arn": self.role_arn})


def policy_role(
    name: str,
    oidc: OidcIdentity,
    service_account: tuple[str, str],
    policy: pulumi.Input[str],
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> IrsaRole:
    """An IRSA role with one inline policy for `service_account` (namespace, name)."""
    namespace, account = service_account
    return IrsaRole(
        name,
        IrsaRoleArgs(
            oidc_provider_arn=oidc.provider_arn,
            oidc_issuer_url=oidc.issuer_url,
            namespace=namespace,
            service_account=account,
            inline_policy=policy,
            tags=tags,
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
