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

The local stack has no RDS: the same layer runs the official PostgreSQL image (an exact tag per
engine version, contracts/versions.py) as a one-pod StatefulSet in the platform namespace with
its own service account, a volume claim of `database.storageGb` GiB and the restricted pod
security profile (non-root, read-only root filesystem, no capabilities), behind a Service
`database`. Vault's engine, roles and statements are the same; only the connection's address
differs (and TLS: the local server speaks plaintext inside the cluster, as the mesh is off there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_vault as vault

from contracts import ports, versions
from contracts.config import Environment, PlatformConfig
from contracts.database import (
    DATABASE_MOUNT,
    VAULT_CONNECTION,
    creation_statements,
    revocation_statements,
    vault_role,
)
from infra.layers.agents import image_pull_policy
from infra.layers.shared import rotating_key
from infra.layers.state import AwsPlacement
from infra.platform.names import (
    APP_LABEL,
    COMPONENT_LABEL,
    DATABASE_SERVICE,
    PART_OF,
    PART_OF_LABEL,
    Namespace,
    database_namespace,
)
from infra.platform.workloads import EPHEMERAL_STORAGE, TMP_SIZE

__all__ = ["MASTER_USER", "Database", "DatabaseArgs", "server_pod_spec", "server_url"]

MASTER_USER: Final = "agentops_admin"
# Vault may hand a pool a login for at most this many times the default lifetime.
_MAX_TTL_FACTOR: Final = 4
# The in-cluster server (local stack): its data directory on the claim, the admin password file.
_DATA_DIR: Final = "/var/lib/postgresql/data"
_ADMIN_SECRET: Final = "database-admin"  # noqa: S105 - the Secret's name
_ADMIN_DIR: Final = "/etc/database-admin"
_SERVER_RESOURCES: Final = {
    "requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": EPHEMERAL_STORAGE},
    "limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": EPHEMERAL_STORAGE},
}


def server_url(cfg: PlatformConfig, address: str) -> str:
    """Vault's connection URL template: RDS forces TLS; the local in-cluster server has none."""
    ssl = "require" if cfg.on_aws else "disable"
    return (
        f"postgresql://{{{{username}}}}:{{{{password}}}}@{address}:{ports.POSTGRES}/"
        f"{cfg.database.name}?sslmode={ssl}"
    )


def _server_labels() -> dict[str, str]:
    return {APP_LABEL: DATABASE_SERVICE}


def _server_container(cfg: PlatformConfig) -> k8s.core.v1.ContainerArgs:
    db = cfg.database
    ready = k8s.core.v1.ExecActionArgs(
        command=["pg_isready", "-h", "127.0.0.1", "-U", MASTER_USER, "-d", db.name]
    )
    return k8s.core.v1.ContainerArgs(
        name="postgres",
        image=f"{versions.POSTGRES_IMAGE}:{versions.POSTGRES_IMAGE_TAGS[db.engine_version]}",
        image_pull_policy=image_pull_policy(None),
        env=[
            k8s.core.v1.EnvVarArgs(name="POSTGRES_USER", value=MASTER_USER),
            k8s.core.v1.EnvVarArgs(name="POSTGRES_PASSWORD_FILE", value=f"{_ADMIN_DIR}/password"),
            k8s.core.v1.EnvVarArgs(name="POSTGRES_DB", value=db.name),
            # A subdirectory: the claim's root may hold lost+found, which initdb refuses.
            k8s.core.v1.EnvVarArgs(name="PGDATA", value=f"{_DATA_DIR}/pgdata"),
        ],
        ports=[k8s.core.v1.ContainerPortArgs(name="postgres", container_port=ports.POSTGRES)],
        resources=k8s.core.v1.ResourceRequirementsArgs(**_SERVER_RESOURCES),
        readiness_probe=k8s.core.v1.ProbeArgs(exec_=ready, period_seconds=5, failure_threshold=3),
        liveness_probe=k8s.core.v1.ProbeArgs(
            exec_=ready, period_seconds=10, failure_threshold=6, initial_delay_seconds=30
        ),
        security_context=k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            run_as_user=versions.POSTGRES_IMAGE_UID,
            run_as_group=versions.POSTGRES_IMAGE_UID,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="data", mount_path=_DATA_DIR),
            k8s.core.v1.VolumeMountArgs(name="run", mount_path="/var/run/postgresql"),
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),  # noqa: S108
            k8s.core.v1.VolumeMountArgs(name=_ADMIN_SECRET, mount_path=_ADMIN_DIR, read_only=True),
        ],
    )


def server_pod_spec(cfg: PlatformConfig) -> k8s.core.v1.PodSpecArgs:
    """The local stack's PostgreSQL pod: pure (no resource is registered)."""
    uid = versions.POSTGRES_IMAGE_UID
    return k8s.core.v1.PodSpecArgs(
        service_account_name=DATABASE_SERVICE,
        automount_service_account_token=False,
        security_context=k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=uid,
            run_as_group=uid,
            fs_group=uid,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        containers=[_server_container(cfg)],
        volumes=[
            # The socket and PID file only; /tmp as the runtime's (within EPHEMERAL_STORAGE).
            k8s.core.v1.VolumeArgs(
                name="run", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="1Mi")
            ),
            k8s.core.v1.VolumeArgs(
                name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=TMP_SIZE)
            ),
            # Readable by the server's group only (fsGroup), never written.
            k8s.core.v1.VolumeArgs(
                name=_ADMIN_SECRET,
                secret=k8s.core.v1.SecretVolumeSourceArgs(
                    secret_name=_ADMIN_SECRET, default_mode=0o440
                ),
            ),
        ],
    )


@dataclass(frozen=True)
class DatabaseArgs:
    config: PlatformConfig
    # The VPC's private subnets for RDS; None: the in-cluster server (local stack).
    placement: AwsPlacement | None
    provider: k8s.Provider
    depends_on: list[pulumi.Resource]
    # Vault's API provider (the Vault layer's `api`): the secrets engine is configured there.
    vault_api: vault.Provider


class Database(pulumi.ComponentResource):
    address: pulumi.Output[str]
    # The RDS storage key (None: the in-cluster server's volume is the cluster's business).
    key_arn: pulumi.Output[str] | None = None

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
        inside = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=args.depends_on
        )
        if args.placement is not None:
            instance = self._instance(name, cfg, args.placement, master_password)
            self.address = instance.address
            k8s.core.v1.Service(
                f"{name}-service",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=DATABASE_SERVICE, namespace=Namespace.AGENTS.value
                ),
                spec=k8s.core.v1.ServiceSpecArgs(
                    type="ExternalName", external_name=instance.address
                ),
                opts=inside,
            )
            # The connection waits for the instance through its address already.
            depends: list[pulumi.Resource] = []
        else:
            depends = self._in_cluster(name, cfg, master_password, inside)
        url = self.address.apply(lambda address: server_url(cfg, address))
        self._vault(name, cfg, args.vault_api, url, depends, master_password)
        self.register_outputs({"address": self.address, "key_arn": self.key_arn})

    def _in_cluster(
        self,
        name: str,
        cfg: PlatformConfig,
        master_password: pulumi.Output[str],
        inside: pulumi.ResourceOptions,
    ) -> list[pulumi.Resource]:
        """The local stack's server: admin Secret, service account, StatefulSet, Service."""
        ns = database_namespace(cfg).value
        labels = _server_labels()
        meta = k8s.meta.v1.ObjectMetaArgs(
            name=DATABASE_SERVICE,
            namespace=ns,
            labels={**labels, COMPONENT_LABEL: "postgres", PART_OF_LABEL: PART_OF},
        )
        secret = k8s.core.v1.Secret(
            f"{name}-admin",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=_ADMIN_SECRET, namespace=ns),
            string_data={"password": master_password},
            opts=inside,
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account", metadata=meta, automount_service_account_token=False, opts=inside
        )
        server = k8s.apps.v1.StatefulSet(
            f"{name}-server",
            metadata=meta,
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                service_name=DATABASE_SERVICE,
                replicas=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=meta.labels),
                    spec=server_pod_spec(cfg),
                ),
                volume_claim_templates=[
                    k8s.core.v1.PersistentVolumeClaimArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(name="data"),
                        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                            access_modes=["ReadWriteOnce"],
                            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                                requests={"storage": f"{cfg.database.storage_gb}Gi"}
                            ),
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions.merge(
                inside, pulumi.ResourceOptions(depends_on=[secret, account])
            ),
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta,
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=labels,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="postgres", port=ports.POSTGRES, target_port="postgres"
                    )
                ],
            ),
            opts=inside,
        )
        self.address = pulumi.Output.from_input(f"{DATABASE_SERVICE}.{ns}.svc.cluster.local")
        return [server]

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
        clients = placement.nodes_only(
            name,
            ports.POSTGRES,
            "PostgreSQL from the EKS nodes only",
            "EKS nodes (the pools and Vault)",
            self,
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
        url: pulumi.Output[str],
        server: list[pulumi.Resource],  # what the connection waits for beyond its URL
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
                connection_url=url,
                username=MASTER_USER,
                password=master_password,
            ),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=server))
            if server
            else opts,
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
