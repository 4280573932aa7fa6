"""Istio zero trust: strict mTLS, deny by default, identity-based allows, caller JWTs,
and a gateway whose blue/green split comes from config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra import versions
from infra.config import PlatformConfig
from infra.layers.monitoring import ALERTMANAGER_SERVICE_ACCOUNT, PROMETHEUS_SERVICE_ACCOUNT
from infra.platform.names import COST_ENGINE, MANAGER, Namespace, pool_workload
from infra.platform.tracing import TELEMETRY_NAME, mesh_telemetry
from infra.platform.workloads import TRACK_LABEL, Track
from runtime import endpoints, ports

__all__ = ["GATEWAY", "Mesh", "MeshArgs", "principal"]

GATEWAY = "istio-ingressgateway"


def principal(namespace: str, service_account: str) -> str:
    """The SPIFFE identity Istio gives a workload: what allow rules name."""
    return f"cluster.local/ns/{namespace}/sa/{service_account}"


def _fqdn(name: str, namespace: Namespace) -> str:
    return f"{name}.{namespace.value}.svc.cluster.local"


def _paths(prefix: str) -> list[str]:
    return [prefix, f"{prefix}/*"]


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

        custom(
            "mesh-mtls-strict",
            "PeerAuthentication",
            "security.istio.io",
            ns,
            {"mtls": {"mode": "STRICT"}},
        )
        telemetry = mesh_telemetry(cfg)
        if telemetry is not None:
            custom(TELEMETRY_NAME, "Telemetry", "telemetry.istio.io", ns, telemetry)
        # An empty policy in the root namespace allows nothing: every path below is explicit.
        custom("deny-all", "AuthorizationPolicy", "security.istio.io", ns, {})

        platform, agents = Namespace.PLATFORM.value, Namespace.AGENTS.value
        gateway_sa = principal(ns, GATEWAY)
        prometheus = principal(Namespace.MONITORING.value, PROMETHEUS_SERVICE_ACCOUNT)
        alertmanager = principal(Namespace.MONITORING.value, ALERTMANAGER_SERVICE_ACCOUNT)
        manager = principal(platform, MANAGER)
        workers = [principal(agents, pool_workload(p.name)) for p in cfg.agents.pools]
        scrape = {
            "from": [{"source": {"principals": [prometheus]}}],
            "to": [{"operation": {"methods": ["GET"], "paths": [endpoints.METRICS]}}],
        }
        task_source: dict[str, Any] = {"principals": [gateway_sa]}
        if mesh.jwt is not None:
            # Both: the call came through the gateway and carries a valid caller JWT.
            task_source["requestPrincipals"] = ["*"]
        custom(
            "allow-agent-manager",
            "AuthorizationPolicy",
            "security.istio.io",
            platform,
            {
                "selector": {"matchLabels": {"app.kubernetes.io/name": MANAGER}},
                "action": "ALLOW",
                "rules": [
                    {
                        "from": [{"source": task_source}],
                        "to": [
                            {
                                "operation": {
                                    "methods": ["GET", "POST"],
                                    "paths": _paths(endpoints.TASKS_API),
                                }
                            }
                        ],
                    },
                    {
                        "from": [{"source": {"principals": workers}}],
                        "to": [{"operation": {"paths": _paths(endpoints.AGENTS_API)}}],
                    },
                    {
                        "from": [{"source": {"principals": [alertmanager]}}],
                        "to": [
                            {"operation": {"methods": ["POST"], "paths": [endpoints.ALERT_WEBHOOK]}}
                        ],
                    },
                    scrape,
                ],
            },
        )
        custom(
            "allow-cost-engine",
            "AuthorizationPolicy",
            "security.istio.io",
            platform,
            {
                "selector": {"matchLabels": {"app.kubernetes.io/name": COST_ENGINE}},
                "action": "ALLOW",
                "rules": [
                    {
                        "from": [{"source": {"principals": [manager, *workers]}}],
                        "to": [{"operation": {"paths": _paths(endpoints.COST_API)}}],
                    },
                    scrape,
                ],
            },
        )
        # Workers take their tasks from their Redis inbox stream, not over HTTP: the only calls
        # they accept are Prometheus' scrapes of /metrics.
        custom(
            "allow-agent-workers",
            "AuthorizationPolicy",
            "security.istio.io",
            agents,
            {"action": "ALLOW", "rules": [scrape]},
        )
        # The monitoring stack talks to itself (Grafana → Prometheus → Alertmanager).
        custom(
            "allow-monitoring-internal",
            "AuthorizationPolicy",
            "security.istio.io",
            Namespace.MONITORING.value,
            {
                "action": "ALLOW",
                "rules": [{"from": [{"source": {"namespaces": [Namespace.MONITORING.value]}}]}],
            },
        )
        if mesh.jwt is not None:
            custom(
                "task-api-jwt",
                "RequestAuthentication",
                "security.istio.io",
                platform,
                {
                    "selector": {"matchLabels": {"app.kubernetes.io/name": MANAGER}},
                    "jwtRules": [
                        {
                            "issuer": mesh.jwt.issuer,
                            "jwksUri": str(mesh.jwt.jwks_uri),
                            **({"audiences": mesh.jwt.audiences} if mesh.jwt.audiences else {}),
                            "forwardOriginalToken": False,
                        }
                    ],
                },
            )

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
            platform,
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
