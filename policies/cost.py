"""Cost and hygiene: tags finance can read, instance types and fleet sizes within budget."""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from typing import Any

from pulumi_policy import (
    ReportViolation,
    ResourceValidationArgs,
    StackValidationArgs,
)

from policies.common import Report, resource_policy, stack_policy

__all__ = ["POLICIES", "taggable"]

REQUIRED_TAGS = ["environment", "owner", "cost-centre"]
INSTANCE_TYPES = [
    r"^(m6i|m6a|m7i|m7a|m7g|c6i|c7i|r6i|r7i)\.(large|x?\d*xlarge)$",
    r"^g[56]\.\d*xlarge$",
]
CACHE_NODE_TYPES = [r"^cache\.(t4g|m7g|r7g)\.[a-z0-9]+$"]


@functools.cache
def taggable(resource_type: str) -> bool:
    """Whether pulumi-aws lets this resource type carry tags (read from the SDK itself)."""
    try:
        _, module_path, cls_name = resource_type.split(":")
        module = importlib.import_module(f"pulumi_aws.{module_path.split('/')[0]}")
        cls = getattr(module, cls_name)
        return "tags" in inspect.signature(cls._internal_init).parameters
    except (ValueError, ImportError, AttributeError):
        return False


def _tags(args: ResourceValidationArgs, report: Report) -> None:
    if not args.resource_type.startswith("aws:") or not taggable(args.resource_type):
        return
    tags = args.props.get("tags") or {}
    missing = [k for k in args.get_config().get("requiredTags", REQUIRED_TAGS) if not tags.get(k)]
    if missing:
        report(f"missing tags {missing}")


def _instance_types(args: ResourceValidationArgs, report: Report) -> None:
    config = args.get_config()
    if args.resource_type == "aws:eks/nodeGroup:NodeGroup":
        types, patterns = (
            args.props.get("instanceTypes") or [],
            config.get("instanceTypes", INSTANCE_TYPES),
        )
    elif args.resource_type == "aws:ec2/launchTemplate:LaunchTemplate":
        found = args.props.get("instanceType")
        types, patterns = ([found] if found else []), config.get("instanceTypes", INSTANCE_TYPES)
    elif args.resource_type == "aws:elasticache/replicationGroup:ReplicationGroup":
        types, patterns = (
            [args.props.get("nodeType")],
            config.get("cacheNodeTypes", CACHE_NODE_TYPES),
        )
    else:
        return
    for t in types:
        if isinstance(t, str) and not any(re.search(p, t) for p in patterns):
            report(f"instance type {t} is not on the allow-list {patterns}")


def _group_size(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != "aws:eks/nodeGroup:NodeGroup":
        return
    limit = int(args.get_config().get("maxNodesPerGroup", 50))
    size = (args.props.get("scalingConfig") or {}).get("maxSize")
    if isinstance(size, int) and size > limit:
        report(f"maxSize {size} exceeds the per-group limit {limit}")


def _fleet(args: StackValidationArgs, report: ReportViolation) -> None:
    limit = int(args.get_config().get("maxTotalNodes", 100))
    total = sum(
        int((r.props.get("scalingConfig") or {}).get("maxSize") or 0)
        for r in args.resources
        if r.resource_type == "aws:eks/nodeGroup:NodeGroup"
    )
    if total > limit:
        report(f"node groups may grow to {total} nodes; the budget allows {limit}", None)


def _schema(**properties: dict[str, Any]) -> dict[str, Any]:
    return properties


POLICIES = [
    resource_policy(
        "aws-required-tags",
        "Every taggable AWS resource carries the environment, owner and cost-centre tags.",
        "Set agentops:tags (owner, costCentre); layers tag resources through Tagging.",
        _tags,
        config=_schema(
            requiredTags={
                "type": "array",
                "items": {"type": "string"},
                "default": REQUIRED_TAGS,
                "description": "tag keys every AWS resource needs",
            }
        ),
    ),
    resource_policy(
        "aws-allowed-instance-types",
        "Nodes and caches use instance types from the approved families.",
        "Pick a type on the allow-list or extend it in the policy config after review.",
        _instance_types,
        config=_schema(
            instanceTypes={
                "type": "array",
                "items": {"type": "string"},
                "default": INSTANCE_TYPES,
                "description": "regular expressions of allowed EC2 types",
            },
            cacheNodeTypes={
                "type": "array",
                "items": {"type": "string"},
                "default": CACHE_NODE_TYPES,
                "description": "regular expressions of allowed ElastiCache types",
            },
        ),
    ),
    resource_policy(
        "eks-node-group-max-size",
        "No node group may grow beyond the per-group limit.",
        "Lower cluster.nodeGroups[].maxSize or raise maxNodesPerGroup after a budget review.",
        _group_size,
        config=_schema(
            maxNodesPerGroup={
                "type": "integer",
                "minimum": 1,
                "default": 50,
                "description": "largest maxSize of one node group",
            }
        ),
    ),
    stack_policy(
        "eks-total-node-budget",
        "All node groups together may not grow beyond the budgeted fleet size.",
        "Lower node groups' maxSize or raise maxTotalNodes after review.",
        _fleet,
        config={
            "maxTotalNodes": {
                "type": "integer",
                "minimum": 1,
                "default": 100,
                "description": "sum of every node group's maxSize",
            }
        },
    ),
]
