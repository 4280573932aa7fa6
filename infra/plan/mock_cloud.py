"""Stable, realistic outputs for resources the mock engine creates.

Every id, ARN and endpoint is derived from the resource's type and name, never from time or
randomness, so planning the same commit twice writes byte-identical files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pulumi

__all__ = ["ACCOUNT_ID", "MockCloud"]

ACCOUNT_ID = "123456789012"

# EC2-style id prefixes, so plan.json reads like a real state file.
_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
    "aws:ec2/flowLog:FlowLog": "fl",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
    "aws:ec2/route:Route": "r",
}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class MockCloud(pulumi.runtime.Mocks):
    def __init__(self, region: str, stack: str) -> None:
        self.region = region
        self.stack = stack
        self._by_type: dict[str, Callable[[str, dict[str, Any], str], dict[str, Any]]] = {
            "aws:eks/cluster:Cluster": self._eks_cluster,
            "aws:eks/nodeGroup:NodeGroup": self._node_group,
            "aws:ec2/launchTemplate:LaunchTemplate": self._launch_template,
            "aws:ecr/repository:Repository": self._ecr_repository,
            "aws:kms/key:Key": self._kms_key,
            "aws:cloudwatch/logGroup:LogGroup": self._log_group,
            "aws:iam/openIdConnectProvider:OpenIdConnectProvider": self._oidc_provider,
            "random:index/randomPassword:RandomPassword": self._random_password,
            "aws:elasticache/replicationGroup:ReplicationGroup": self._replication_group,
            "aws:rds/instance:Instance": self._rds_instance,
            "tls:index/privateKey:PrivateKey": self._pem("privateKeyPem", "PRIVATE KEY"),
            "tls:index/certRequest:CertRequest": self._pem("certRequestPem", "CERTIFICATE REQUEST"),
            "tls:index/selfSignedCert:SelfSignedCert": self._pem("certPem", "CERTIFICATE"),
            "tls:index/locallySignedCert:LocallySignedCert": self._pem("certPem", "CERTIFICATE"),
        }

    def _arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[Any, Any]]:
        h = _digest(self.stack, args.typ, args.name)
        state: dict[str, Any] = dict(args.inputs)
        if args.typ.startswith("pulumi:providers:"):
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}", state
        if args.typ.startswith("kubernetes:"):
            return self._kubernetes(args, state, h)
        prefix = _ID_PREFIX.get(args.typ)
        if prefix is not None:
            resource_id = f"{prefix}-0{h[:16]}"
        else:
            # Pulumi auto-names with the logical name plus a short random suffix.
            resource_id = state.get("name") or f"{args.name}-{h[:7]}"
        if args.typ.startswith("aws:") and "name" not in state and prefix is None:
            state["name"] = resource_id
        service = args.typ.split(":")[1].split("/")[0]
        state.setdefault(
            "arn", self._arn(service, f"{args.typ.split(':')[-1].lower()}/{resource_id}")
        )
        if args.typ == "aws:iam/role:Role":
            state["arn"] = self._arn("iam", f"role/{state['name']}", regional=False)
        special = self._by_type.get(args.typ)
        if special is not None:
            state.update(special(resource_id, state, h))
        return resource_id, state

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}, []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT_ID, "arn": self._arn("iam", "root", regional=False)}, []
        raise NotImplementedError(f"the offline plan has no mock for invoke {args.token}")

    def _eks_cluster(self, resource_id: str, state: dict[str, Any], h: str) -> dict[str, Any]:
        oidc_id = h[:32].upper()
        vpc = dict(state.get("vpcConfig") or {})
        vpc["clusterSecurityGroupId"] = f"sg-0{h[16:32]}"
        return {
            "arn": self._arn("eks", f"cluster/{state['name']}"),
            "endpoint": f"https://{oidc_id}.gr7.{self.region}.eks.amazonaws.com",
            "certificateAuthority": {"data": f"LS0tLS1CRUdJTi{h[:40]}"},
            "identities": [
                {
                    "oidcs": [
                        {"issuer": f"https://oidc.eks.{self.region}.amazonaws.com/id/{oidc_id}"}
                    ]
                }
            ],
            "vpcConfig": vpc,
            "status": "ACTIVE",
            "platformVersion": "eks.1",
        }

    def _node_group(self, resource_id: str, state: dict[str, Any], h: str) -> dict[str, Any]:
        name = f"{state.get('nodeGroupNamePrefix', '')}{h[:8]}"
        return {"nodeGroupName": name, "status": "ACTIVE"}

    def _launch_template(self, resource_id: str, state: dict[str, Any], h: str) -> dict[str, Any]:
        return {"latestVersion": 1, "defaultVersion": 1}

    def _ecr_repository(self, resource_id: str, state: dict[str, Any], h: str) -> dict[str, Any]:
        name = state["name"]
        return {
            "repositoryUrl": f"{ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com/{name}",
            "arn": self._arn("ecr", f"repository/{name}"),
            "registryId": ACCOUNT_ID,
        }

    def _kms_key(self, resource_id: str, state: dict[str, Any], h: str) -> dict[str, Any]:
        key_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
        return {"keyId": key_id, "arn": self._arn("kms", f"key/{key_id}")}

    def _log_group(self, resource_id: str, state: dict[str, Any], h: str) -> dict[str, Any]:
        # AWS reports a log group's ARN with a trailing `:*`.
        return {"arn": self._arn("logs", f"log-group:{state['name']}:*")}

    def _oidc_provider(self, resource_id: str, state: dict[str, Any], h: str) -> dict[str, Any]:
        host = str(state.get("url", "")).removeprefix("https://")
        return {"arn": self._arn("iam", f"oidc-provider/{host}", regional=False)}

    @staticmethod
    def _pem(field: str, label: str) -> Callable[[str, dict[str, Any], str], dict[str, Any]]:
        def make(resource_id: str, state: dict[str, Any], h: str) -> dict[str, Any]:
            body = (h * 2)[:64]
            return {field: f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"}

        return make

    def _replication_group(self, resource_id: str, state: dict[str, Any], h: str) -> dict[str, Any]:
        domain = f"{resource_id}.{h[:6]}.{self.region}.cache.amazonaws.com"
        if state.get("clusterMode") == "enabled":
            # Cluster mode has one configuration endpoint and no primary (as AWS answers).
            return {
                "configurationEndpointAddress": f"clustercfg.{domain}",
                "arn": self._arn("elasticache", f"replicationgroup:{resource_id}"),
            }
        return {
            "primaryEndpointAddress": f"master.{domain}",
            "readerEndpointAddress": f"replica.{domain}",
            "arn": self._arn("elasticache", f"replicationgroup:{resource_id}"),
        }

    def _rds_instance(self, resource_id: str, state: dict[str, Any], h: str) -> dict[str, Any]:
        # RDS names the endpoint <identifier>.<account-region hash>.<region>.rds.amazonaws.com.
        address = f"{resource_id}.{h[:12]}.{self.region}.rds.amazonaws.com"
        return {
            "address": address,
            "endpoint": f"{address}:{state.get('port', 5432)}",
            "arn": self._arn("rds", f"db:{resource_id}"),
        }

    def _random_password(self, resource_id: str, state: dict[str, Any], h: str) -> dict[str, Any]:
        length = int(state.get("length", 32))
        return {"result": (h * 2)[:length], "bcryptHash": f"$2a$10${h[:53]}"}

    def _kubernetes(
        self, args: pulumi.runtime.MockResourceArgs, state: dict[str, Any], h: str
    ) -> tuple[str, dict[str, Any]]:
        metadata = dict(state.get("metadata") or {})
        if "name" not in metadata and "kind" in state:
            # pulumi-kubernetes auto-names objects: logical name + suffix.
            metadata["name"] = f"{args.name}-{h[:8]}"
        if metadata:
            state["metadata"] = metadata
        ns = metadata.get("namespace")
        resource_id = (
            f"{ns}/{metadata.get('name', args.name)}" if ns else metadata.get("name", args.name)
        )
        return resource_id, state
