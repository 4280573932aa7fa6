"""The optional PostgreSQL database: RDS in the private subnets, and its Vault credentials.

The instance: Multi-AZ as configured (prod always), storage encrypted with its own rotating KMS
key, not publicly accessible, TLS forced by its parameter group, reachable on 5432 from the
cluster's nodes only (pods use the node security group on EKS), deletion protection and a final
snapshot in prod. The master password is generated and leaves only as a Pulumi secret, into the
instance and into Vault's connection; no pod ever gets it.

Vault: a database secrets engine mount with one connection to the instance and one role per
allowed pool (`contracts.database`): each lease is a login of its own inside the pool's group
role and schema, short-lived (`database.credentialsTtlS`), revoked by Vault. The pools' Vault
policies (infra/platform/vault_access.py) grant each pool its own role's credentials only.

Pods reach the instance by a Service name of the agents namespace (an ExternalName Service that
resolves to the RDS endpoint): the workers' env is derived from the config alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_vault as vault

from contracts import ports
from contracts.config import Environment, PlatformConfig
from contracts.database import (
    DATABASE_MOUNT,
    VAULT_CONNECTION,
    creation_statements,
    revocation_statements,
    vault_role,
)
from infra.layers.shared import rotating_key
from infra.layers.state import AwsPlacement
from infra.platform.names import DATABASE_SERVICE, Namespace

__all__ = ["MASTER_USER", "Database", "DatabaseArgs"]

MASTER_USER: Final = "agentops_admin"
# Vault may hand a pool a login for at most this many times the default lifetime.
_MAX_TTL_FACTOR: Final = 4


@dataclass(frozen=True)
class DatabaseArgs:
    config: PlatformConfig
    placement: AwsPlacement
    provider: k8s.Provider
    depends_on: list[pulumi.Resource]
    # Vault's API provider (the Vault layer's `api`): the secrets engine is configured there.
    vault_api: vault.Provider


class Database(pulumi.ComponentResource):
    address: pulumi.Output[str]
    key_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Database", name, None, opts)
        cfg = args.config
        password = random.RandomPassword(
            f"{name}-master-password",
            length=40,
            special=False,  # it goes into Vault's connection URL template unescaped
            opts=pulumi.ResourceOptions(parent=self),
        )
        master_password = pulumi.Output.secret(password.result)
        instance = self._instance(name, cfg, args.placement, master_password)
        self.address = instance.address
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=DATABASE_SERVICE, namespace=Namespace.AGENTS.value
            ),
            spec=k8s.core.v1.ServiceSpecArgs(type="ExternalName", external_name=instance.address),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=args.depends_on
            ),
        )
        self._vault(name, cfg, args.vault_api, instance, master_password)
        self.register_outputs({"address": self.address, "key_arn": self.key_arn})

    def _instance(
        self,
        name: str,
        cfg: PlatformConfig,
        placement: AwsPlacement,
        master_password: pulumi.Output[str],
    ) -> aws.rds.Instance:
        db = cfg.database
        tags = placement.tagging
        child = pulumi.ResourceOptions(parent=self)
        key = rotating_key(
            f"{name}-key", "the agent platform's PostgreSQL storage", tags, f"{name}-key", self
        )
        self.key_arn = key.arn
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets",
            description="private subnets of the agent platform",
            subnet_ids=list(placement.private_subnet_ids),
            tags=tags(f"{name}-subnets"),
            opts=child,
        )
        clients = aws.ec2.SecurityGroup(
            f"{name}-clients",
            vpc_id=placement.vpc_id,
            description="PostgreSQL from the EKS nodes only",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=ports.POSTGRES,
                    to_port=ports.POSTGRES,
                    security_groups=[placement.node_security_group_id],
                    description="EKS nodes (the pools and Vault)",
                )
            ],
            tags=tags(f"{name}-clients"),
            opts=child,
        )
        major = db.engine_version.split(".")[0]
        parameters = aws.rds.ParameterGroup(
            f"{name}-parameters",
            family=f"postgres{major}",
            description="the agent platform's PostgreSQL: TLS only",
            parameters=[aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1")],
            tags=tags(f"{name}-parameters"),
            opts=child,
        )
        prod = cfg.environment is Environment.PROD
        return aws.rds.Instance(
            f"{name}-postgres",
            engine="postgres",
            engine_version=db.engine_version,
            auto_minor_version_upgrade=False,  # versions move through the plan only
            instance_class=db.instance_class,
            allocated_storage=db.storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=key.arn,
            multi_az=db.multi_az,
            publicly_accessible=False,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[clients.id],
            parameter_group_name=parameters.name,
            port=ports.POSTGRES,
            db_name=db.name,
            username=MASTER_USER,
            password=master_password,
            iam_database_authentication_enabled=False,  # Vault dynamic credentials only
            backup_retention_period=db.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=prod,
            skip_final_snapshot=not prod,
            final_snapshot_identifier=f"{name}-final" if prod else None,
            apply_immediately=False,
            tags=tags(f"{name}-postgres"),
            opts=child,
        )

    def _vault(
        self,
        name: str,
        cfg: PlatformConfig,
        api: vault.Provider,
        instance: aws.rds.Instance,
        master_password: pulumi.Output[str],
    ) -> None:
        db = cfg.database
        opts = pulumi.ResourceOptions(parent=self, provider=api)
        mount = vault.Mount(
            f"{name}-secrets-engine",
            path=DATABASE_MOUNT,
            type="database",
            description="dynamic PostgreSQL logins of the agent pools",
            opts=opts,
        )
        roles = [vault_role(pool) for pool in db.pools]
        connection = vault.database.SecretBackendConnection(
            f"{name}-connection",
            backend=mount.path,
            name=VAULT_CONNECTION,
            allowed_roles=roles,
            postgresql=vault.database.SecretBackendConnectionPostgresqlArgs(
                connection_url=pulumi.Output.concat(
                    "postgresql://{{username}}:{{password}}@",
                    instance.address,
                    f":{ports.POSTGRES}/{db.name}?sslmode=require",
                ),
                username=MASTER_USER,
                password=master_password,
            ),
            opts=opts,
        )
        for pool, role in zip(db.pools, roles, strict=True):
            vault.database.SecretBackendRole(
                f"{name}-role-{pool}",
                backend=mount.path,
                name=role,
                db_name=connection.name,
                creation_statements=creation_statements(pool),
                revocation_statements=revocation_statements(pool),
                default_ttl=db.credentials_ttl_s,
                max_ttl=db.credentials_ttl_s * _MAX_TTL_FACTOR,
                opts=opts,
            )
