"""What the policies share: reading pod specs, config, tags and secret-ness of values."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

__all__ = [
    "ENVIRONMENT_SCHEMA",
    "POD_TEMPLATE_PATHS",
    "Report",
    "containers",
    "environment",
    "is_secret_value",
    "pod_spec",
    "resource_policy",
    "stack_policy",
]

# Where each workload kind keeps its pod spec.
POD_TEMPLATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}

ENVIRONMENT_SCHEMA = {
    "environment": {
        "type": "string",
        "enum": ["staging", "prod", "local"],
        "default": "prod",
        "description": "the stack's environment; the strictest (prod) when not configured",
    }
}

# What a resource policy reports with: the message; the resource is the one it validates.
Report = Callable[[str], None]

# How the offline plan shows a secret; the engine hands policies secret values as such.
_REDACTED = "[secret]"


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    path = POD_TEMPLATE_PATHS.get(resource_type)
    if path is None:
        return None
    node: Any = props
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, Mapping) else None


def containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, Mapping):
                yield c


def environment(args: ResourceValidationArgs | Any) -> str:
    return str(args.get_config().get("environment", "prod"))


def is_secret_value(value: Any) -> bool:
    return value == _REDACTED or type(value).__name__ == "Secret"


def resource_policy(
    name: str,
    description: str,
    remediation: str,
    validate: Callable[[ResourceValidationArgs, Report], None],
    *,
    config: Mapping[str, Any] | None = None,
) -> ResourceValidationPolicy:
    """A mandatory resource policy; per-environment enforcement comes from the pack config."""
    return ResourceValidationPolicy(
        name=name,
        description=description,
        remediation_steps=remediation,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties=dict(config)) if config else None,
        validate=lambda args, report: validate(args, lambda message: report(message, None)),
    )


def stack_policy(
    name: str,
    description: str,
    remediation: str,
    validate: Callable[[StackValidationArgs, ReportViolation], None],
    *,
    config: Mapping[str, Any] | None = None,
) -> StackValidationPolicy:
    """A mandatory policy over the whole stack (cross-resource facts)."""
    return StackValidationPolicy(
        name=name,
        description=description,
        remediation_steps=remediation,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties=dict(config)) if config else None,
        validate=validate,
    )
