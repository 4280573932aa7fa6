"""Vault: HA raft behind TLS, KMS auto-unseal through IRSA, the injector, and its configuration.

Configuring Vault itself (Kubernetes auth, KV v2 and transit mounts, one policy and role per
runtime service account, the Redis password and the runtime's tokens) uses the `pulumi-vault`
provider rather than a bootstrap Job: every policy change then shows in the preview diff of the
pull request and is judged by the policy pack, and nothing in the cluster holds a Vault admin
token. Vault must be initialised first (`vault operator init`, recovery keys with KMS unseal),
so this part is switched on by `vault.configure` once a token exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, cast

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls
import pulumi_vault as vault

from contracts.config import PlatformConfig, UnsealMode
from infra.layers.irsa import IrsaRole, IrsaRoleArgs
from infra.layers.shared import pinned_chart, rotating_key
from infra.layers.tagging import Tagging
from infra.platform.flows import VAULT_API, VAULT_CLUSTER
from infra.platform.metric_producers import (
    VAULT_METRICS_POLICY,
    VAULT_METRICS_POLICY_HCL,
    VAULT_METRICS_SECRET,
    VAULT_TELEMETRY_HCL,
)
from infra.platform.names import Namespace
from infra.platform.runtime_secrets import (
    AGENT_TOKEN,
    AUTH_MOUNT,
    CA_CONFIGMAP,
    COST_ENGINE_TOKEN,
    MANAGER_API_TOKENS,
    MANAGER_WEBHOOK_TOKEN,
    REDIS_SECRET_PATH,
    VAULT_AGENT_RESOURCES,
    VAULT_RELEASE,
)
from infra.platform.vault_access import TRANSIT_MOUNT, VAULT_AUDIENCE, vault_identities
from infra.platform.workloads import LOGS_EPHEMERAL_STORAGE

__all__ = ["AwsIdentity", "Vault", "VaultArgs"]

RELEASE = VAULT_RELEASE
SERVICE_ACCOUNT = "vault"
TLS_SECRET = "vault-tls"  # noqa: S105 - a Secret's name
_TLS_DIR = "/vault/userconfig/vault-tls"
_CERT_DAYS = 365
# Ephemeral storage of chart containers that write nothing but their logs.
_DISK_ONLY: Final = {
    "requests": {"ephemeral-storage": LOGS_EPHEMERAL_STORAGE},
    "limits": {"ephemeral-storage": LOGS_EPHEMERAL_STORAGE},
}


@dataclass(frozen=True)
class AwsIdentity:
    """What KMS auto-unseal needs: the cluster's OIDC provider and the region."""

    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    region: str
    tagging: Tagging


@dataclass(frozen=True)
class VaultArgs:
    config: PlatformConfig
    provider: k8s.Provider
    depends_on: list[pulumi.Resource]
    aws: AwsIdentity | None
    vault_token: pulumi.Output[str] | None
    redis_password: pulumi.Output[str]
    # The token Alertmanager presents on the manager's webhook (monitoring layer); None when
    # monitoring is off (the manager still requires a token file, so one is generated here).
    manager_webhook_token: pulumi.Output[str] | None


def _listener_tls(cfg: PlatformConfig) -> str:
    """In the mesh the listener is plaintext: the servers' Istio sidecars terminate the mesh's
    mTLS and authorize each request by identity, method and path (flows.py), which they could
    not do inside Vault's own TLS. Outside the mesh Vault terminates TLS itself."""
    if cfg.mesh.enabled:
        return "  tls_disable = true\n"
    return (
        f'  tls_cert_file = "{_TLS_DIR}/tls.crt"\n  tls_key_file = "{_TLS_DIR}/tls.key"\n'
        '  tls_min_version = "tls12"\n'
    )


def _retry_join(cfg: PlatformConfig, i: int) -> str:
    ns = Namespace.VAULT.value
    host = f"{RELEASE}-{i}.{RELEASE}-internal.{ns}.svc:{VAULT_API}"
    if cfg.mesh.enabled:
        return f'  retry_join {{\n    leader_api_addr = "http://{host}"\n  }}'
    return (
        f'  retry_join {{\n    leader_api_addr = "https://{host}"\n'
        f'    leader_ca_cert_file = "{_TLS_DIR}/ca.crt"\n  }}'
    )


def _server_hcl(cfg: PlatformConfig, kms_key_id: str | None, region: str | None) -> str:
    joins = "\n".join(_retry_join(cfg, i) for i in range(cfg.vault.replicas))
    # Prometheus presents a token reading only sys/metrics where the program configures Vault
    # (see metric_producers); an unconfigured Vault has no such token to check.
    metrics_access = (
        "" if cfg.vault.configure else "  telemetry { unauthenticated_metrics_access = true }\n"
    )
    seal = ""
    if kms_key_id is not None:
        seal = f'seal "awskms" {{\n  region = "{region}"\n  kms_key_id = "{kms_key_id}"\n}}\n'
    return (
        "ui = false\n"
        # No IPC_LOCK capability in a Pod Security baseline namespace; swap is off on EKS nodes.
        "disable_mlock = true\n"
        'listener "tcp" {\n'
        f'  address = "[::]:{VAULT_API}"\n  cluster_address = "[::]:{VAULT_CLUSTER}"\n'
        f"{_listener_tls(cfg)}"
        f"{metrics_access}}}\n"
        f'storage "raft" {{\n  path = "/vault/data"\n{joins}\n}}\n'
        f"{seal}"
        'service_registration "kubernetes" {}\n'
        f"{VAULT_TELEMETRY_HCL}"
    )


def _chart_values(
    cfg: PlatformConfig,
    sa_annotations: dict[str, pulumi.Input[str]],
    hcl: pulumi.Output[str],
) -> dict[str, Any]:
    """The pinned chart's values: HA raft servers behind TLS (or the mesh) and the injector."""
    return {
        # The chart's listener scheme: its Services' port names (http/https), VAULT_ADDR.
        "global": {"tlsDisable": cfg.mesh.enabled},
        "injector": {
            "enabled": True,
            "replicas": 2 if cfg.vault.ha else 1,
            # Injected agents without resource annotations get the same small share as
            # the runtime's (which set them explicitly, see runtime_secrets).
            "agentDefaults": {
                "cpuRequest": VAULT_AGENT_RESOURCES["requests"]["cpu"],
                "memRequest": VAULT_AGENT_RESOURCES["requests"]["memory"],
                "cpuLimit": VAULT_AGENT_RESOURCES["limits"]["cpu"],
                "memLimit": VAULT_AGENT_RESOURCES["limits"]["memory"],
                "ephemeralRequest": VAULT_AGENT_RESOURCES["requests"]["ephemeral"],
                "ephemeralLimit": VAULT_AGENT_RESOURCES["limits"]["ephemeral"],
            },
            # The injector writes only its logs; CPU and memory come from the LimitRange.
            "resources": _DISK_ONLY,
        },
        "server": {
            **_mesh_pod(cfg),
            # Raft data is on its volume claim; on the node's disk only its logs.
            "resources": _DISK_ONLY,
            "serviceAccount": {"name": SERVICE_ACCOUNT, "annotations": sa_annotations},
            "dataStorage": {"enabled": True, "size": f"{cfg.vault.storage_gi}Gi"},
            "extraEnvironmentVars": {"VAULT_CACERT": f"{_TLS_DIR}/ca.crt"},
            "volumes": [{"name": "vault-tls", "secret": {"secretName": TLS_SECRET}}],
            "volumeMounts": [{"name": "vault-tls", "mountPath": _TLS_DIR, "readOnly": True}],
            "ha": {
                "enabled": True,
                "replicas": cfg.vault.replicas,
                "raft": {"enabled": True, "setNodeId": True, "config": hcl},
            },
        },
    }


def _mesh_pod(cfg: PlatformConfig) -> dict[str, Any]:
    """The servers join the mesh (chart 0.28.1 values `server.extraLabels`, `server.annotations`:
    labels and annotations of the server pods): Istio's injection label — their namespace is
    not injected, the injector stays a plain webhook — and the cluster port outside the
    sidecar both ways (raft and forwarding carry Vault's own mutual TLS between the servers).
    """
    if not cfg.mesh.enabled:
        return {}
    bypass = str(VAULT_CLUSTER)
    return {
        "extraLabels": {"sidecar.istio.io/inject": "true"},
        "annotations": {
            # The proxy starts before Vault (its raft join goes through it) and stops after.
            "sidecar.istio.io/nativeSidecar": "true",
            "traffic.sidecar.istio.io/excludeInboundPorts": bypass,
            "traffic.sidecar.istio.io/excludeOutboundPorts": bypass,
        },
    }


class Vault(pulumi.ComponentResource):
    ca_pem: pulumi.Output[str]
    # The provider that configures Vault through its API (None: `vault.configure` is off).
    api: vault.Provider | None = None

    def __init__(
        self, name: str, args: VaultArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Vault", name, None, opts)
        cfg = args.config
        inside = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=args.depends_on
        )
        self.ca_pem = self._tls(name, inside)
        sa_annotations, hcl = self._seal(name, cfg, args)
        release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE,
            namespace=Namespace.VAULT.value,
            **pinned_chart("vault"),
            values=_chart_values(cfg, sa_annotations, hcl),
            atomic=False,  # pods stay unready until initialised; atomic would roll back
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[*args.depends_on]
            ),
        )
        self._ca_config_maps(name, cfg, inside)
        if cfg.vault.configure:
            assert args.vault_token is not None and cfg.vault.address is not None
            self._configure(name, cfg, args, release)
        self.register_outputs({"ca_pem": self.ca_pem})

    def _seal(
        self, name: str, cfg: PlatformConfig, args: VaultArgs
    ) -> tuple[dict[str, pulumi.Input[str]], pulumi.Output[str]]:
        """The server's service-account annotations and HCL: KMS auto-unseal through IRSA on
        AWS, Shamir keys elsewhere."""
        if cfg.vault.unseal is not UnsealMode.AWS_KMS:
            return {}, pulumi.Output.from_input(_server_hcl(cfg, None, None))
        assert args.aws is not None  # the config rules keep KMS off the local stack
        key_arn, role_arn = self._kms_unseal(name, args.aws)
        region = args.aws.region
        hcl = key_arn.apply(lambda k: _server_hcl(cfg, k, region))
        return {"eks.amazonaws.com/role-arn": role_arn}, hcl

    def _ca_config_maps(
        self, name: str, cfg: PlatformConfig, inside: pulumi.ResourceOptions
    ) -> None:
        """Clients in the runtime namespaces (and Prometheus) verify Vault with this CA."""
        clients = [Namespace.PLATFORM, Namespace.AGENTS]
        if cfg.monitoring.enabled:
            clients.append(Namespace.MONITORING)
        for client_ns in clients:
            k8s.core.v1.ConfigMap(
                f"{name}-ca-{client_ns.value}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=CA_CONFIGMAP, namespace=client_ns.value),
                data={"ca.crt": self.ca_pem},
                opts=inside,
            )

    def _tls(self, name: str, inside: pulumi.ResourceOptions) -> pulumi.Output[str]:
        ns = Namespace.VAULT.value
        child = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name="agentops vault CA"),
            validity_period_hours=_CERT_DAYS * 24 * 5,
            allowed_uses=["cert_signing", "crl_signing"],
            opts=child,
        )
        key = tls.PrivateKey(
            f"{name}-server-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child
        )
        dns = [
            RELEASE,
            f"{RELEASE}.{ns}",
            f"{RELEASE}.{ns}.svc",
            f"*.{RELEASE}-internal",
            f"*.{RELEASE}-internal.{ns}.svc",
            f"{RELEASE}-active.{ns}.svc",
        ]
        request = tls.CertRequest(
            f"{name}-server",
            private_key_pem=key.private_key_pem,
            dns_names=dns,
            ip_addresses=["127.0.0.1"],
            subject=tls.CertRequestSubjectArgs(common_name=f"{RELEASE}.{ns}.svc"),
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-server",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=_CERT_DAYS * 24,
            early_renewal_hours=30 * 24,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth", "client_auth"],
            opts=child,
        )
        k8s.core.v1.Secret(
            f"{name}-tls",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=TLS_SECRET, namespace=ns),
            type="kubernetes.io/tls",
            string_data={
                "tls.crt": cert.cert_pem,
                "tls.key": key.private_key_pem,
                "ca.crt": ca.cert_pem,
            },
            opts=inside,
        )
        return cast(pulumi.Output[str], ca.cert_pem)

    def _kms_unseal(
        self, name: str, identity: AwsIdentity
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        tags = identity.tagging
        child = pulumi.ResourceOptions(parent=self)
        key = rotating_key(
            f"{name}-unseal",
            "Vault auto-unseal for the agent platform",
            tags,
            f"{name}-unseal",
            self,
        )
        policy = key.arn.apply(
            lambda arn: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
                            "Resource": arn,
                        }
                    ],
                },
                sort_keys=True,
            )
        )
        role = IrsaRole(
            f"{name}-unseal",
            IrsaRoleArgs(
                oidc_provider_arn=identity.oidc_provider_arn,
                oidc_issuer_url=identity.oidc_issuer_url,
                namespace=Namespace.VAULT.value,
                service_account=SERVICE_ACCOUNT,
                inline_policy=policy,
                tags=tags(f"{name}-unseal"),
            ),
            opts=child,
        )
        return key.key_id, role.role_arn

    def _configure(
        self, name: str, cfg: PlatformConfig, args: VaultArgs, release: k8s.helm.v3.Release
    ) -> None:
        assert args.vault_token is not None and cfg.vault.address is not None
        provider = vault.Provider(
            f"{name}-api",
            address=str(cfg.vault.address).rstrip("/"),
            token=args.vault_token,
            ca_cert_file=cfg.vault.ca_cert_file,
            skip_child_token=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[release]),
        )
        self.api = provider
        opts = pulumi.ResourceOptions(parent=self, provider=provider)
        auth = vault.AuthBackend(
            f"{name}-kubernetes-auth", type="kubernetes", path=AUTH_MOUNT, opts=opts
        )
        vault.kubernetes.AuthBackendConfig(
            f"{name}-kubernetes-auth",
            backend=auth.path,
            # Vault runs in the cluster: it reviews tokens with its own service account.
            kubernetes_host="https://kubernetes.default.svc",
            opts=opts,
        )
        kv = vault.Mount(
            f"{name}-kv",
            path=cfg.vault.kv_mount,
            type="kv",
            options={"version": "2"},
            description="secrets of the agent platform's services and pools",
            opts=opts,
        )
        transit = vault.Mount(
            f"{name}-transit",
            path=TRANSIT_MOUNT,
            type="transit",
            description="encryption as a service for application data",
            opts=opts,
        )
        for identity in vault_identities(cfg):
            vault.transit.SecretBackendKey(
                f"{name}-transit-key-{identity.name}",
                backend=transit.path,
                name=identity.name,
                deletion_allowed=False,
                opts=opts,
            )
            policy = vault.Policy(
                f"{name}-policy-{identity.name}",
                name=identity.name,
                policy=identity.policy,
                opts=opts,
            )
            vault.kubernetes.AuthBackendRole(
                f"{name}-role-{identity.name}",
                backend=auth.path,
                role_name=identity.name,
                bound_service_account_names=[identity.name],
                bound_service_account_namespaces=[identity.namespace.value],
                audience=VAULT_AUDIENCE,
                token_policies=[policy.name],
                # Vault's `default` policy opens sys/ paths (leases, wrapping, tools, the
                # cubbyhole): the identity's own policy names all it needs.
                token_no_default_policy=True,
                token_ttl=3600,
                token_max_ttl=4 * 3600,
                opts=opts,
            )
        vault.kv.SecretV2(
            f"{name}-redis-password",
            mount=kv.path,
            name=REDIS_SECRET_PATH,
            data_json=args.redis_password.apply(lambda p: json.dumps({"password": p})),
            opts=opts,
        )
        self._runtime_tokens(name, kv.path, args, opts)
        if cfg.monitoring.enabled:
            self._metrics_token(name, args, opts)

    def _metrics_token(self, name: str, args: VaultArgs, opts: pulumi.ResourceOptions) -> None:
        """The token Prometheus scrapes Vault's telemetry with: its only policy reads
        sys/metrics. Periodic, renewed by each `pulumi up` well before its period ends."""
        policy = vault.Policy(
            f"{name}-policy-{VAULT_METRICS_POLICY}",
            name=VAULT_METRICS_POLICY,
            policy=VAULT_METRICS_POLICY_HCL,
            opts=opts,
        )
        metrics_token = vault.Token(
            f"{name}-metrics-token",
            display_name=VAULT_METRICS_POLICY,
            policies=[policy.name],
            no_default_policy=True,
            no_parent=True,
            renewable=True,
            period="768h",
            renew_min_lease=14 * 24 * 3600,
            renew_increment=768 * 3600,
            opts=opts,
        )
        k8s.core.v1.Secret(
            f"{name}-metrics-token",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=VAULT_METRICS_SECRET, namespace=Namespace.MONITORING.value
            ),
            string_data={"token": pulumi.Output.secret(metrics_token.client_token)},
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=args.depends_on
            ),
        )

    def _runtime_tokens(
        self,
        name: str,
        mount: pulumi.Output[str],
        args: VaultArgs,
        opts: pulumi.ResourceOptions,
    ) -> None:
        """The tokens the runtime's services present to each other, as KV entries its pods'
        injected files are rendered from (infra/platform/workloads.py)."""

        def token(key: str) -> pulumi.Output[str]:
            generated = random.RandomPassword(
                f"{name}-{key}", length=48, special=False, opts=pulumi.ResourceOptions(parent=self)
            )
            return cast(pulumi.Output[str], generated.result)

        def entry(
            key: str, path: str, data: dict[str, pulumi.Output[str]], seeded: bool = False
        ) -> None:
            text: pulumi.Output[str] = pulumi.Output.all(*data.values()).apply(
                lambda values: json.dumps(dict(zip(data, values, strict=True)))
            )
            # A Pulumi secret: the plan and the state hold it encrypted, never in plain text.
            secret_text: pulumi.Output[str] = pulumi.Output.secret(text)
            vault.kv.SecretV2(
                f"{name}-{key}",
                mount=mount,
                name=path,
                data_json=secret_text,
                # A seeded entry is the first version only: later versions are rotations
                # written in Vault (`vault kv patch`, runtime/secrets rotation), not drift.
                opts=pulumi.ResourceOptions.merge(
                    opts, pulumi.ResourceOptions(ignore_changes=["data_json"] if seeded else None)
                ),
            )

        # Presented by the workers, accepted by the manager and the cost engine. A rotation
        # writes `token` = new and `previous` = old in one version: the accepting side reads
        # every value of the entry, so both stay valid until `previous` is removed.
        entry("agent-token", AGENT_TOKEN, {"token": token("agent-token-value")}, seeded=True)
        entry(
            "cost-engine-token",
            COST_ENGINE_TOKEN,
            {"token": token("cost-engine-token-value")},
            seeded=True,
        )
        # Task submitters' tokens: one to start with; operators add theirs under further keys.
        entry(
            "manager-api-tokens",
            MANAGER_API_TOKENS,
            {"initial": token("manager-api-token-value")},
            seeded=True,
        )
        # Alertmanager cannot read Vault: it reads this token from the Kubernetes Secret the
        # monitoring layer creates, and the manager reads the same generated value from here.
        # One source (the monitoring layer's RandomPassword), so Pulumi owns this entry.
        webhook = args.manager_webhook_token
        if webhook is None:
            # No Alertmanager presents it, but the manager requires its token file.
            webhook = token("manager-webhook-token-value")
        entry("manager-webhook-token", MANAGER_WEBHOOK_TOKEN, {"token": webhook})
