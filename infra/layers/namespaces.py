"""Namespaces of the platform: Pod Security level, quota, limits and a default-deny network."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from contracts import versions
from contracts.config import PlatformConfig
from infra.platform.capacity import quotas
from infra.platform.names import (
    PART_OF,
    PART_OF_LABEL,
    POD_SECURITY,
    Namespace,
    PodSecurity,
    enabled_namespaces,
)
from infra.platform.network_policies import network_policies

__all__ = ["Namespaces", "NamespacesArgs"]

# Containers that state nothing get these; every platform workload states its own.
_DEFAULT_REQUEST = {"cpu": "100m", "memory": "128Mi"}
_DEFAULT_LIMIT = {"cpu": "500m", "memory": "512Mi"}
# Sidecar injection where the mesh runs. Not the mesh itself, and not Vault: it terminates
# its own TLS and its raft peers must reach each other without a proxy in between.
_INJECTED = (Namespace.PLATFORM, Namespace.AGENTS, Namespace.MONITORING)


@dataclass(frozen=True)
class NamespacesArgs:
    config: PlatformConfig
    provider: k8s.Provider


class Namespaces(pulumi.ComponentResource):
    names: dict[Namespace, pulumi.Output[str]]
    resources: list[pulumi.Resource]

    def __init__(
        self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Namespaces", name, None, opts)
        cfg = args.config
        version = versions.POD_SECURITY_STANDARD
        self.names = {}
        self.resources = []
        by_ns: dict[Namespace, k8s.core.v1.Namespace] = {}
        for ns in enabled_namespaces(cfg):
            level = POD_SECURITY[ns]
            labels = {
                PART_OF_LABEL: PART_OF,
                "pod-security.kubernetes.io/enforce": level.value,
                "pod-security.kubernetes.io/enforce-version": version,
                # Warn and audit at restricted everywhere, so drift shows before it is allowed.
                "pod-security.kubernetes.io/warn": PodSecurity.RESTRICTED.value,
                "pod-security.kubernetes.io/warn-version": version,
                "pod-security.kubernetes.io/audit": PodSecurity.RESTRICTED.value,
                "pod-security.kubernetes.io/audit-version": version,
            }
            if cfg.mesh.enabled and ns in _INJECTED:
                labels["istio-injection"] = "enabled"
            namespace = k8s.core.v1.Namespace(
                f"{name}-{ns.value}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=ns.value, labels=labels),
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
            )
            by_ns[ns] = namespace
            self.names[ns] = namespace.metadata.apply(lambda m: m.name)
            self.resources.append(namespace)

        inside = {
            ns: pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[n])
            for ns, n in by_ns.items()
        }
        for ns, quota in quotas(cfg).items():
            self.resources.append(
                k8s.core.v1.ResourceQuota(
                    f"{name}-{ns.value}-quota",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name="platform-quota", namespace=ns.value),
                    spec=k8s.core.v1.ResourceQuotaSpecArgs(hard=quota.hard()),
                    opts=inside[ns],
                )
            )
            self.resources.append(
                k8s.core.v1.LimitRange(
                    f"{name}-{ns.value}-limits",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name="platform-limits", namespace=ns.value),
                    spec=k8s.core.v1.LimitRangeSpecArgs(
                        limits=[
                            k8s.core.v1.LimitRangeItemArgs(
                                type="Container",
                                default=_DEFAULT_LIMIT,
                                default_request=_DEFAULT_REQUEST,
                            )
                        ]
                    ),
                    opts=inside[ns],
                )
            )
        for policy in network_policies(cfg):
            self.resources.append(
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-{policy.namespace.value}-{policy.name}",
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        name=policy.name,
                        namespace=policy.namespace.value,
                        annotations=policy.annotations or None,
                    ),
                    spec=policy.spec,
                    opts=inside[policy.namespace],
                )
            )
        self.register_outputs({"names": self.names})
