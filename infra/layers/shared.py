"""Building blocks several layers use the same way: rotating KMS keys and pinned charts."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from contracts import versions
from infra.layers.tagging import Tagging

__all__ = ["pinned_chart", "rotating_key"]

# Long enough to notice and cancel a mistaken deletion; data under a deleted key is lost.
_KEY_DELETION_DAYS = 30


def rotating_key(
    name: str, description: str, tagging: Tagging, tag_name: str, parent: pulumi.Resource
) -> aws.kms.Key:
    """A customer-managed KMS key with yearly automatic rotation."""
    return aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=_KEY_DELETION_DAYS,
        tags=tagging(tag_name),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def pinned_chart(key: str) -> dict[str, Any]:
    """`chart`, `version` and `repository_opts` of a Helm release, from the version table."""
    chart = versions.CHARTS[key]
    return {
        "chart": chart.name,
        "version": chart.version,
        "repository_opts": k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository),
    }
