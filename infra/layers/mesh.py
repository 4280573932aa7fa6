"""Istio: the charts, the security config derived from the flow table
(infra/platform/mesh_policies.py), and a gateway whose blue/green split comes from config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from contracts import endpoints, ports, versions
from contracts.config import PlatformConfig
from infra.platform.mesh_policies import mesh_egress, mesh_security
from infra.platform.names import COST_ENGINE, MANAGER, Namespace, pool_workload
from infra.platform.tracing import TELEMETRY_NAME, mesh_telemetry
from infra.platform.workloads import TRACK_LABEL, Track

__all__ = ["GATEWAY", "Mesh", "MeshArgs"]

GATEWAY = "istio-ingressgateway"


def _fqdn(name: str, namespace: Namespace) -> str:
    return f"{name}.{namespace.value}.svc.cluster.local"


@dataclass(frozen=True)
class MeshArgs:
    config: PlatformConfig
    provider: k8s.Provider
    depends_on: list[pulumi.Resource]


def _istiod_values(cfg: PlatformConfig) -> dict[str, Any]:
    ha = cfg.environment.value == "prod"
    return {
        "pilot": {"cni": {"enabled": True}, "autoscaleMin": 2 if ha else 1},
        "meshConfig": {
            "accessLogFile": "/dev/stdout",
            "extensionProviders": [
                {
                    "name": "otel",
                    "opentelemetry": {
                        "service": _fqdn(
                            "otel-collector-opentelemetry-collector", Namespace.MONITORING
                        ),
                        "port": 4317,
                    },
                }
            ],
        },
    }


def _gateway_values(cfg: PlatformConfig) -> dict[str, Any]:
    ha = cfg.environment.value == "prod"
    service: dict[str, Any] = {"type": "LoadBalancer" if cfg.on_aws else "NodePort"}
    if cfg.on_aws:
        service["annotations"] = {
            "service.beta.kubernetes.io/aws-load-balancer-type": "external",
            "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
        }
    return {
        "labels": {"istio": "ingressgateway"},
        "service": service,
        "autoscaling": {"minReplicas": 2 if ha else 1},
    }


def _destination_rules(cfg: PlatformConfig) -> list[tuple[str, Namespace, dict[str, Any]]]:
    """ISTIO_MUTUAL towards the runtime's services; the manager's subsets are its tracks."""
    hosts = [(MANAGER, Namespace.PLATFORM), (COST_ENGINE, Namespace.PLATFORM)] + [
        (pool_workload(p.name), Namespace.AGENTS) for p in cfg.agents.pools
    ]
    rules: list[tuple[str, Namespace, dict[str, Any]]] = []
    for host, host_ns in hosts:
        spec: dict[str, Any] = {
            "host": _fqdn(host, host_ns),
            "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
        }
        if host == MANAGER:
            spec["subsets"] = [{"name": t.value, "labels": {TRACK_LABEL: t.value}} for t in Track]
        rules.append((host, host_ns, spec))
    return rules


def _gateway_spec(cfg: PlatformConfig) -> dict[str, Any]:
    mesh = cfg.mesh
    return {
        "selector": {"istio": "ingressgateway"},
        "servers": [
            {
                "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "hosts": mesh.hosts,
                "tls": {"mode": "SIMPLE", "credentialName": mesh.tls_secret},
            },
            {
                "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                "hosts": mesh.hosts,
                "tls": {"httpsRedirect": True},
            },
        ],
    }


def _routes_spec(cfg: PlatformConfig) -> dict[str, Any]:
    """The gateway's task API to the manager, split between its tracks by config."""
    mesh = cfg.mesh
    split = mesh.blue_green
    manager_host = _fqdn(MANAGER, Namespace.PLATFORM)
    return {
        "hosts": mesh.hosts,
        "gateways": [f"{Namespace.MESH.value}/agentops-gateway"],
        "http": [
            {
                "match": [{"uri": {"prefix": endpoints.TASKS_API}}],
                "route": [
                    {
                        "destination": {
                            "host": manager_host,
                            "subset": track.value,
                            "port": {"number": ports.MANAGER_HTTP},
                        },
                        "weight": weight,
                    }
                    for track, weight in (
                        (Track.BLUE, split.blue_weight),
                        (Track.GREEN, split.green_weight),
                    )
                ],
            }
        ],
    }


class Mesh(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: MeshArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Mesh", name, None, opts)
        self._name = name
        self._args = args
        cfg = args.config
        after = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=self._charts(cfg)
        )
        self._security(cfg, after)
        telemetry = mesh_telemetry(cfg)
        if telemetry is not None:
            self._custom(
                TELEMETRY_NAME, "Telemetry", "telemetry.istio.io", Namespace.MESH, telemetry, after
            )
        for host, host_ns, spec in _destination_rules(cfg):
            self._custom(host, "DestinationRule", "networking.istio.io", host_ns, spec, after)
        self._custom(
            "agentops-gateway",
            "Gateway",
            "networking.istio.io",
            Namespace.MESH,
            _gateway_spec(cfg),
            after,
        )
        self._custom(
            "agent-manager-routes",
            "VirtualService",
            "networking.istio.io",
            Namespace.PLATFORM,
            _routes_spec(cfg),
            after,
        )
        self.register_outputs({})

    def _charts(self, cfg: PlatformConfig) -> list[pulumi.Resource]:
        """Istio's charts in order; what the mesh's config objects wait for."""
        base = self._release("istio-base", "base", {"defaultRevision": "default"}, [], cfg)
        # The CNI node agent sets up traffic redirection, so injected pods need no NET_ADMIN
        # init container and stay within Pod Security "restricted".
        cni = self._release(
            "istio-cni", "cni", {"global": {"platform": "eks"} if cfg.on_aws else {}}, [base], cfg
        )
        istiod = self._release("istiod", "istiod", _istiod_values(cfg), [base, cni], cfg)
        gateway = self._release(GATEWAY, "gateway", _gateway_values(cfg), [istiod], cfg)
        return [istiod, gateway]

    def _release(
        self,
        key: str,
        chart: str,
        values: dict[str, Any],
        after: list[pulumi.Resource],
        cfg: PlatformConfig,
    ) -> k8s.helm.v3.Release:
        args = self._args
        return k8s.helm.v3.Release(
            f"{self._name}-{key}",
            name=key,
            chart=chart,
            version=versions.for_minor(cfg.kubernetes_version).istio,
            namespace=Namespace.MESH.value,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=versions.ISTIO_CHARTS),
            values=values,
            atomic=True,
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[*args.depends_on, *after]
            ),
        )

    def _security(self, cfg: PlatformConfig, after: pulumi.ResourceOptions) -> None:
        """mTLS, deny by default, one allow per flow of the table (infra/platform/flows.py).
        Egress by name: ServiceEntries and REGISTRY_ONLY Sidecars (mesh_policies.mesh_egress)."""
        for obj in [*mesh_security(cfg), *mesh_egress(cfg)]:
            k8s.apiextensions.CustomResource(
                f"{self._name}-{obj.namespace}-{obj.name}",
                api_version=f"{obj.group}/v1",
                kind=obj.kind,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=obj.name, namespace=obj.namespace, annotations=obj.annotations or None
                ),
                spec=obj.spec,
                opts=after,
            )

    def _custom(
        self,
        key: str,
        kind: str,
        group: str,
        namespace: Namespace,
        spec: dict[str, Any],
        after: pulumi.ResourceOptions,
    ) -> None:
        k8s.apiextensions.CustomResource(
            f"{self._name}-{key}",
            api_version=f"{group}/v1",
            kind=kind,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=key, namespace=namespace.value),
            spec=spec,
            opts=after,
        )
