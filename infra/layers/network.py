"""The VPC: subnets per AZ, NAT, private endpoints to AWS services and flow logs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from contracts.config import NetworkConfig
from infra.layers.tagging import Tagging

__all__ = ["PUBLIC_SUBNET_TAGS", "Network", "NetworkArgs", "nat_of_zone", "private_subnet_tags"]

# S3 is a gateway endpoint (free, route-table based); everything else is an interface endpoint.
_GATEWAY_ENDPOINTS = frozenset({"s3", "dynamodb"})
# Where the AWS load balancer controller puts internet-facing load balancers.
PUBLIC_SUBNET_TAGS = {"kubernetes.io/role/elb": "1"}


def private_subnet_tags(cluster_name: str) -> dict[str, str]:
    """Internal load balancers go here, and the cluster may share the subnet."""
    return {
        "kubernetes.io/role/internal-elb": "1",
        f"kubernetes.io/cluster/{cluster_name}": "shared",
    }


def nat_of_zone(zone: int, nat_count: int) -> int:
    """The NAT gateway a zone's private subnets leave through: its own, or the single one.

    With a single NAT every zone routes through it: cheaper, one zone's failure domain.
    """
    return zone if nat_count > 1 else 0


@dataclass(frozen=True)
class NetworkArgs:
    config: NetworkConfig
    region: str
    cluster_name: str
    tagging: Tagging


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Network", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)

        vpc, igw = self._vpc(name, args, child)
        public_rt = self._public_route_table(name, args, vpc, igw, child)
        public, private = self._subnets(name, args, vpc, public_rt, child)
        nats = self._nat_gateways(name, args, public, igw, child)
        private_rts = self._private_route_tables(name, args, vpc, private, nats, child)
        self._endpoints(name, args, vpc, private, private_rts, child)
        if cfg.flow_logs.enabled:
            self._flow_logs(name, args, vpc, child)

        self.vpc_id = vpc.id
        self.public_subnet_ids = [s.id for s in public]
        self.private_subnet_ids = [s.id for s in private]
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "private_subnet_ids": self.private_subnet_ids,
            }
        )

    def _vpc(
        self, name: str, args: NetworkArgs, child: pulumi.ResourceOptions
    ) -> tuple[aws.ec2.Vpc, aws.ec2.InternetGateway]:
        tags = args.tagging
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(args.config.vpc_cidr),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags(f"{name}-vpc"),
            opts=child,
        )
        # The default security group allows all traffic between its members; empty it (CIS 5.4).
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, tags=tags(f"{name}-default-locked"), opts=child
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=tags(f"{name}-igw"), opts=child
        )
        return vpc, igw

    def _public_route_table(
        self,
        name: str,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        igw: aws.ec2.InternetGateway,
        child: pulumi.ResourceOptions,
    ) -> aws.ec2.RouteTable:
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=vpc.id, tags=args.tagging(f"{name}-public"), opts=child
        )
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=child,
        )
        return public_rt

    def _subnets(
        self,
        name: str,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        public_rt: aws.ec2.RouteTable,
        child: pulumi.ResourceOptions,
    ) -> tuple[list[aws.ec2.Subnet], list[aws.ec2.Subnet]]:
        """A public and a private subnet per zone; the public ones route to the internet."""
        cfg, tags = args.config, args.tagging
        public: list[aws.ec2.Subnet] = []
        private: list[aws.ec2.Subnet] = []
        for i, az in enumerate(cfg.availability_zones):
            pub = aws.ec2.Subnet(
                f"{name}-public-{az}",
                vpc_id=vpc.id,
                cidr_block=str(cfg.public_subnet_cidrs[i]),
                availability_zone=az,
                map_public_ip_on_launch=False,
                tags=tags(f"{name}-public-{az}", **PUBLIC_SUBNET_TAGS),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{az}", subnet_id=pub.id, route_table_id=public_rt.id, opts=child
            )
            public.append(pub)
            priv = aws.ec2.Subnet(
                f"{name}-private-{az}",
                vpc_id=vpc.id,
                cidr_block=str(cfg.private_subnet_cidrs[i]),
                availability_zone=az,
                tags=tags(f"{name}-private-{az}", **private_subnet_tags(args.cluster_name)),
                opts=child,
            )
            private.append(priv)
        return public, private

    def _nat_gateways(
        self,
        name: str,
        args: NetworkArgs,
        public: list[aws.ec2.Subnet],
        igw: aws.ec2.InternetGateway,
        child: pulumi.ResourceOptions,
    ) -> list[aws.ec2.NatGateway]:
        cfg, tags = args.config, args.tagging
        nats: list[aws.ec2.NatGateway] = []
        for i in range(cfg.nat_gateway_count):
            az = cfg.availability_zones[i]
            eip = aws.ec2.Eip(
                f"{name}-nat-{az}", domain="vpc", tags=tags(f"{name}-nat-{az}"), opts=child
            )
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{az}",
                    allocation_id=eip.id,
                    subnet_id=public[i].id,
                    tags=tags(f"{name}-nat-{az}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )
        return nats

    def _private_route_tables(
        self,
        name: str,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        private: list[aws.ec2.Subnet],
        nats: list[aws.ec2.NatGateway],
        child: pulumi.ResourceOptions,
    ) -> list[aws.ec2.RouteTable]:
        """A route table per zone whose default route leaves through the zone's NAT gateway."""
        tags = args.tagging
        private_rts: list[aws.ec2.RouteTable] = []
        for i, az in enumerate(args.config.availability_zones):
            nat = nats[nat_of_zone(i, len(nats))]
            rt = aws.ec2.RouteTable(
                f"{name}-private-{az}", vpc_id=vpc.id, tags=tags(f"{name}-private-{az}"), opts=child
            )
            aws.ec2.Route(
                f"{name}-private-{az}-default",
                route_table_id=rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat.id,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{az}", subnet_id=private[i].id, route_table_id=rt.id, opts=child
            )
            private_rts.append(rt)
        return private_rts

    def _endpoints(
        self,
        name: str,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        private: list[aws.ec2.Subnet],
        route_tables: list[aws.ec2.RouteTable],
        child: pulumi.ResourceOptions,
    ) -> None:
        cfg, tags = args.config, args.tagging
        interface = [e for e in cfg.vpc_endpoints if e not in _GATEWAY_ENDPOINTS]
        sg = None
        if interface:
            sg = aws.ec2.SecurityGroup(
                f"{name}-endpoints",
                vpc_id=vpc.id,
                description="HTTPS from inside the VPC to AWS interface endpoints",
                ingress=[
                    aws.ec2.SecurityGroupIngressArgs(
                        protocol="tcp",
                        from_port=443,
                        to_port=443,
                        cidr_blocks=[str(cfg.vpc_cidr)],
                        description="HTTPS from the VPC",
                    )
                ],
                tags=tags(f"{name}-endpoints"),
                opts=child,
            )
        for service in cfg.vpc_endpoints:
            service_name = f"com.amazonaws.{args.region}.{service}"
            label = service.replace(".", "-")
            if service in _GATEWAY_ENDPOINTS:
                aws.ec2.VpcEndpoint(
                    f"{name}-{label}",
                    vpc_id=vpc.id,
                    service_name=service_name,
                    vpc_endpoint_type="Gateway",
                    route_table_ids=[rt.id for rt in route_tables],
                    tags=tags(f"{name}-{label}"),
                    opts=child,
                )
            else:
                assert sg is not None
                aws.ec2.VpcEndpoint(
                    f"{name}-{label}",
                    vpc_id=vpc.id,
                    service_name=service_name,
                    vpc_endpoint_type="Interface",
                    private_dns_enabled=True,
                    subnet_ids=[s.id for s in private],
                    security_group_ids=[sg.id],
                    tags=tags(f"{name}-{label}"),
                    opts=child,
                )

    def _flow_logs(
        self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc, child: pulumi.ResourceOptions
    ) -> None:
        cfg, tags = args.config.flow_logs, args.tagging
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            retention_in_days=cfg.retention_days,
            tags=tags(f"{name}-flow-logs"),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            tags=tags(f"{name}-flow-logs"),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                    "logs:DescribeLogStreams",
                                ],
                                "Resource": [arn, f"{arn}:*"],
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type=cfg.traffic_type,
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=tags(f"{name}-flow-log"),
            opts=child,
        )
