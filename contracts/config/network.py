"""VPC layout: address plan, subnets per zone, NAT, endpoints and flow logs."""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from contracts.config.base import ConfigModel, RuleViolation

__all__ = ["AWS_REGION", "FlowLogsConfig", "NatMode", "NetworkConfig", "zone_region"]

# An AWS region's name: eu-west-1, us-gov-west-1.
AWS_REGION = r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]"

# An availability zone's name is its region's and a letter (eu-west-1a), or, for a Local or
# Wavelength Zone, its region's and a location (us-west-2-lax-1a): the region is the prefix.
_ZONE = re.compile(rf"^(?P<region>{AWS_REGION})([a-z]|-[a-z0-9-]+)$")


def zone_region(zone: str) -> str | None:
    """The region an availability zone lies in (None: not an AZ name)."""
    found = _ZONE.match(zone)
    return found.group("region") if found else None


class NatMode(StrEnum):
    PER_AZ = "perAz"
    SINGLE = "single"


class FlowLogsConfig(ConfigModel):
    enabled: bool = Field(default=True, description="record VPC flow logs to CloudWatch")
    retention_days: int = Field(
        default=90, ge=1, le=3653, description="days CloudWatch keeps flow-log records"
    )
    traffic_type: str = Field(
        default="ALL", pattern="^(ACCEPT|REJECT|ALL)$", description="ACCEPT, REJECT or ALL"
    )


class NetworkConfig(ConfigModel):
    vpc_cidr: ipaddress.IPv4Network = Field(description="the VPC's IPv4 range, /16 to /24")
    availability_zones: list[str] = Field(
        min_length=2, max_length=6, description="AZs the subnets span, e.g. eu-west-1a"
    )
    public_subnet_cidrs: list[ipaddress.IPv4Network] = Field(
        description="one public subnet per AZ, in AZ order (load balancers, NAT)"
    )
    private_subnet_cidrs: list[ipaddress.IPv4Network] = Field(
        description="one private subnet per AZ, in AZ order (nodes, endpoints)"
    )
    nat: NatMode = Field(default=NatMode.PER_AZ, description="perAz or single NAT gateway")
    vpc_endpoints: list[str] = Field(
        default_factory=lambda: ["ecr.api", "ecr.dkr", "s3", "sts", "logs"],
        description="AWS services reached privately through VPC endpoints",
    )
    flow_logs: FlowLogsConfig = Field(
        default_factory=FlowLogsConfig, description="VPC flow logs to CloudWatch"
    )

    @model_validator(mode="after")
    def _subnets_fit(self) -> Self:
        if not 16 <= self.vpc_cidr.prefixlen <= 24:
            raise RuleViolation("vpcCidr", str(self.vpc_cidr), "prefix length must be /16../24")
        if len(set(self.availability_zones)) != len(self.availability_zones):
            raise RuleViolation(
                "availabilityZones", self.availability_zones, "zones must not repeat"
            )
        for i, zone in enumerate(self.availability_zones):
            if zone_region(zone) is None:
                raise RuleViolation(
                    f"availabilityZones[{i}]",
                    zone,
                    "an AWS availability zone name, e.g. eu-west-1a",
                )
        regions = sorted({str(zone_region(z)) for z in self.availability_zones})
        if len(regions) > 1:
            raise RuleViolation(
                "availabilityZones",
                self.availability_zones,
                f"zones of one region only (these span {', '.join(regions)})",
            )
        seen: list[tuple[str, ipaddress.IPv4Network]] = []
        for key in ("public_subnet_cidrs", "private_subnet_cidrs"):
            alias = "publicSubnetCidrs" if key.startswith("public") else "privateSubnetCidrs"
            cidrs: list[ipaddress.IPv4Network] = getattr(self, key)
            if len(cidrs) != len(self.availability_zones):
                raise RuleViolation(
                    alias,
                    [str(c) for c in cidrs],
                    f"needs exactly one CIDR per availability zone "
                    f"({len(self.availability_zones)})",
                )
            for i, cidr in enumerate(cidrs):
                where = f"{alias}[{i}]"
                if not cidr.subnet_of(self.vpc_cidr):
                    raise RuleViolation(
                        where, str(cidr), f"must lie inside vpcCidr {self.vpc_cidr}"
                    )
                for other_where, other in seen:
                    if cidr.overlaps(other):
                        raise RuleViolation(where, str(cidr), f"overlaps {other_where} ({other})")
                seen.append((where, cidr))
        return self

    @property
    def region(self) -> str:
        """The region of the VPC's zones: the stack's `aws:region` (the program checks)."""
        found = zone_region(self.availability_zones[0])
        assert found is not None  # _subnets_fit refused any other name
        return found

    @property
    def nat_gateway_count(self) -> int:
        return len(self.availability_zones) if self.nat is NatMode.PER_AZ else 1
