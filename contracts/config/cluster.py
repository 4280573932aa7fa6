"""EKS control plane, access and managed node groups."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Self

from pydantic import Field, field_validator, model_validator

from contracts import versions
from contracts.config.base import ConfigModel, DnsLabel, RuleViolation

__all__ = [
    "ClusterConfig",
    "EndpointConfig",
    "NodeGroupConfig",
    "NodeGroupRole",
    "TaintConfig",
]

_CONTROL_PLANE_LOG_TYPES = {"api", "audit", "authenticator", "controllerManager", "scheduler"}


class NodeGroupRole(StrEnum):
    SYSTEM = "system"
    AGENTS = "agents"
    GPU = "gpu"


class TaintConfig(ConfigModel):
    key: str = Field(min_length=1, max_length=63, description="taint key")
    value: str = Field(default="", max_length=63, description="taint value")
    effect: str = Field(
        pattern="^(NO_SCHEDULE|NO_EXECUTE|PREFER_NO_SCHEDULE)$",
        description="NO_SCHEDULE, NO_EXECUTE or PREFER_NO_SCHEDULE (EKS spelling)",
    )


class NodeGroupConfig(ConfigModel):
    name: DnsLabel
    role: NodeGroupRole = Field(description="system, agents or gpu; drives labels and taints")
    instance_types: list[str] = Field(
        min_length=1, description="EC2 instance types, e.g. m6i.large"
    )
    ami_type: str = Field(
        default="AL2023_x86_64_STANDARD",
        pattern="^(AL2023_x86_64_STANDARD|AL2023_ARM_64_STANDARD|AL2023_x86_64_NVIDIA|"
        "BOTTLEROCKET_x86_64|BOTTLEROCKET_ARM_64|BOTTLEROCKET_x86_64_NVIDIA)$",
        description="EKS AMI type (AL2023 or Bottlerocket)",
    )
    capacity_type: str = Field(
        default="ON_DEMAND", pattern="^(ON_DEMAND|SPOT)$", description="ON_DEMAND or SPOT"
    )
    min_size: int = Field(ge=0, le=450, description="fewest nodes")
    max_size: int = Field(ge=1, le=450, description="most nodes, ≥ minSize")
    desired_size: int = Field(
        ge=0, le=450, description="initial nodes; the autoscaler owns it afterwards"
    )
    disk_size_gib: int = Field(default=50, ge=20, le=1000, description="encrypted gp3 root volume")
    max_unavailable_percent: int = Field(
        default=33, ge=1, le=100, description="share of nodes replaced at once during updates"
    )
    labels: dict[str, str] = Field(default_factory=dict, description="extra Kubernetes node labels")
    taints: list[TaintConfig] = Field(default_factory=list, description="Kubernetes node taints")

    @field_validator("instance_types")
    @classmethod
    def _instance_shape(cls, types: list[str]) -> list[str]:
        for t in types:
            family, dot, size = t.partition(".")
            if not dot or not family or not size:
                raise ValueError(f"{t!r} is not an EC2 instance type like 'm6i.large'")
        return types

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        if self.max_size < self.min_size:
            raise RuleViolation("maxSize", self.max_size, f"must be ≥ minSize ({self.min_size})")
        if not self.min_size <= self.desired_size <= self.max_size:
            raise RuleViolation(
                "desiredSize",
                self.desired_size,
                f"must lie between minSize ({self.min_size}) and maxSize ({self.max_size})",
            )
        if self.role is NodeGroupRole.GPU and "NVIDIA" not in self.ami_type:
            raise RuleViolation("amiType", self.ami_type, "a gpu node group needs an NVIDIA AMI")
        return self


class EndpointConfig(ConfigModel):
    private_access: bool = Field(default=True, description="API reachable inside the VPC")
    public_access: bool = Field(default=False, description="API reachable from the internet")
    public_access_cidrs: list[ipaddress.IPv4Network] = Field(
        default_factory=list, description="allow-list when publicAccess is true"
    )

    @model_validator(mode="after")
    def _reachable_and_narrow(self) -> Self:
        if not (self.private_access or self.public_access):
            raise RuleViolation(
                "privateAccess", False, "at least one of privateAccess / publicAccess is needed"
            )
        if self.public_access and not self.public_access_cidrs:
            raise RuleViolation(
                "publicAccessCidrs", [], "a public endpoint needs an explicit CIDR allow-list"
            )
        for i, cidr in enumerate(self.public_access_cidrs):
            if cidr.prefixlen == 0:
                raise RuleViolation(
                    f"publicAccessCidrs[{i}]", str(cidr), "0.0.0.0/0 opens the API to everyone"
                )
        return self


class ClusterConfig(ConfigModel):
    name: DnsLabel = Field(description="EKS cluster name")
    kubernetes_version: str = Field(
        description=f"Kubernetes minor, one of {', '.join(versions.SUPPORTED_MINORS)}"
    )
    endpoint: EndpointConfig = Field(
        default_factory=EndpointConfig, description="who can reach the Kubernetes API"
    )
    log_types: list[str] = Field(
        default_factory=lambda: sorted(_CONTROL_PLANE_LOG_TYPES),
        description="control-plane log types sent to CloudWatch",
    )
    log_retention_days: int = Field(
        default=90, ge=1, le=3653, description="days CloudWatch keeps control-plane logs"
    )
    admin_role_arns: list[str] = Field(
        default_factory=list,
        description="IAM roles granted cluster-admin through EKS access entries",
    )
    node_groups: list[NodeGroupConfig] = Field(
        min_length=1, description="managed node groups; one with role system is required"
    )
    ecr_repositories: list[DnsLabel] = Field(
        default_factory=lambda: ["agent-manager", "cost-engine", "agent-worker"],
        description="ECR repositories created for the runtime images",
    )

    @field_validator("kubernetes_version")
    @classmethod
    def _supported(cls, minor: str) -> str:
        if minor not in versions.VERSIONS:
            raise ValueError(
                f"Kubernetes {minor} has no entry in the version table; "
                f"supported minors: {', '.join(versions.SUPPORTED_MINORS)}"
            )
        return minor

    @field_validator("log_types")
    @classmethod
    def _log_types(cls, types: list[str]) -> list[str]:
        unknown = sorted(set(types) - _CONTROL_PLANE_LOG_TYPES)
        if unknown:
            raise ValueError(
                f"unknown log types {unknown}; allowed: {sorted(_CONTROL_PLANE_LOG_TYPES)}"
            )
        return types

    @field_validator("admin_role_arns")
    @classmethod
    def _role_arns(cls, arns: list[str]) -> list[str]:
        for arn in arns:
            if not arn.startswith("arn:aws:iam::") or ":role/" not in arn:
                raise ValueError(f"{arn!r} is not an IAM role ARN (arn:aws:iam::<acct>:role/..)")
        return arns

    @model_validator(mode="after")
    def _groups(self) -> Self:
        names = [g.name for g in self.node_groups]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise RuleViolation(
                    f"nodeGroups[{i}].name", name, "node group names must be unique"
                )
        if not any(g.role is NodeGroupRole.SYSTEM for g in self.node_groups):
            raise RuleViolation(
                "nodeGroups", names, "one node group with role 'system' is required"
            )
        return self
