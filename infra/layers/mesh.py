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


class Mesh(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: MeshArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Mesh", name, None, opts)
        cfg = args.config
        mesh = cfg.mesh
        istio = versions.for_minor(cfg.kubernetes_version).istio
        ns = Namespace.MESH.value

        def release(
            key: str, chart: str, values: dict[str, Any], after: list[pulumi.Resource]
        ) -> k8s.helm.v3.Release:
            return k8s.helm.v3.Release(
                f"{name}-{key}",
                name=key,
                chart=chart,
                version=istio,
                namespace=ns,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=versions.ISTIO_CHARTS),
                values=values,
                atomic=True,
                opts=pulumi.ResourceOptions(
                    parent=self, provider=args.provider, depends_on=[*args.depends_on, *after]
                ),
            )

        base = release("istio-base", "base", {"defaultRevision": "default"}, [])
        # The CNI node agent sets up traffic redirection, so injected pods need no NET_ADMIN
        # init container and stay within Pod Security "restricted".
        cni = release(
            "istio-cni", "cni", {"global": {"platform": "eks"} if cfg.on_aws else {}}, [base]
        )
        ha = cfg.environment.value == "prod"
        istiod = release(
            "istiod",
            "istiod",
            {
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
            },
            [base, cni],
        )
        service: dict[str, Any] = {"type": "LoadBalancer" if cfg.on_aws else "NodePort"}
        if cfg.on_aws:
            service["annotations"] = {
                "service.beta.kubernetes.io/aws-load-balancer-type": "external",
                "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
                "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
            }
        gateway = release(
            GATEWAY,
            "gateway",
            {
                "labels": {"istio": "ingressgateway"},
                "service": service,
                "autoscaling": {"minReplicas": 2 if ha else 1},
            },
            [istiod],
        )
        after = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=[istiod, gateway]
        )

        def custom(key: str, kind: str, group: str, namespace: str, spec: dict[str, Any]) -> None:
            k8s.apiextensions.CustomResource(
                f"{name}-{key}",
                api_version=f"{group}/v1",
                kind=kind,
                metadata=k8s.meta.v1.ObjectMetaArgs(name=key, namespace=namespace),
                spec=spec,
                opts=after,
            )

        # mTLS, deny by default, one allow per flow of the table (infra/platform/flows.py).
        # Egress by name: ServiceEntries and REGISTRY_ONLY Sidecars (mesh_policies.mesh_egress).
        for obj in [*mesh_security(cfg), *mesh_egress(cfg)]:
            k8s.apiextensions.CustomResource(
                f"{name}-{obj.namespace}-{obj.name}",
                api_version=f"{obj.group}/v1",
                kind=obj.kind,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=obj.name, namespace=obj.namespace, annotations=obj.annotations or None
                ),
                spec=obj.spec,
                opts=after,
            )

        telemetry = mesh_telemetry(cfg)
        if telemetry is not None:
            custom(TELEMETRY_NAME, "Telemetry", "telemetry.istio.io", ns, telemetry)

        manager_host = _fqdn(MANAGER, Namespace.PLATFORM)
        hosts = [(MANAGER, Namespace.PLATFORM), (COST_ENGINE, Namespace.PLATFORM)] + [
            (pool_workload(p.name), Namespace.AGENTS) for p in cfg.agents.pools
        ]
        for host, host_ns in hosts:
            spec: dict[str, Any] = {
                "host": _fqdn(host, host_ns),
                "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
            }
            if host == MANAGER:
                spec["subsets"] = [
                    {"name": t.value, "labels": {TRACK_LABEL: t.value}} for t in Track
                ]
            custom(host, "DestinationRule", "networking.istio.io", host_ns.value, spec)

        custom(
            "agentops-gateway",
            "Gateway",
            "networking.istio.io",
            ns,
            {
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
            },
        )
        split = mesh.blue_green
        custom(
            "agent-manager-routes",
            "VirtualService",
            "networking.istio.io",
            Namespace.PLATFORM.value,
            {
                "hosts": mesh.hosts,
                "gateways": [f"{ns}/agentops-gateway"],
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
            },
        )
        self.register_outputs({})
