"""The platform's NetworkPolicies as data: default deny everywhere, then each needed path.

Pure functions of the config, so tests read the exact allow-list without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config import PlatformConfig, RedisMode
from infra.platform.metric_producers import (
    PROMETHEUS_POD,
    REDIS_EXPORTER_PORT,
    REDIS_EXPORTER_RELEASE,
)
from infra.platform.names import (
    APP_LABEL,
    COST_ENGINE,
    MANAGER,
    PART_OF,
    PART_OF_LABEL,
    Namespace,
    enabled_namespaces,
)
from runtime import ports

__all__ = ["PolicySpec", "network_policies"]

NS_LABEL = "kubernetes.io/metadata.name"
IMDS = "169.254.169.254/32"
ISTIOD_PORTS = (15010, 15012, 15014, 15017)
ENVOY_METRICS = 15020
VAULT_API, VAULT_CLUSTER = 8200, 8201
KUBE_API = 443


@dataclass(frozen=True)
class PolicySpec:
    name: str
    namespace: Namespace
    spec: dict[str, Any]


def _ns(namespace: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NS_LABEL: namespace}}}


def _pods(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {**_ns(namespace), "podSelector": {"matchLabels": labels}}


def _tcp(*numbers: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": n} for n in numbers]


def _anywhere(except_cidrs: tuple[str, ...] = ()) -> dict[str, Any]:
    block: dict[str, Any] = {"cidr": "0.0.0.0/0"}
    if except_cidrs:
        block["except"] = list(except_cidrs)
    return {"ipBlock": block}


def _app(name: str) -> dict[str, Any]:
    return {"matchLabels": {APP_LABEL: name}}


def _rule(
    direction: str,
    name: str,
    ns: Namespace,
    selector: dict[str, Any],
    peers: list[dict[str, Any]],
    port_list: list[dict[str, Any]],
) -> PolicySpec:
    key, peer_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    return PolicySpec(
        name,
        ns,
        {
            "podSelector": selector,
            "policyTypes": [direction],
            key: [{peer_key: peers, "ports": port_list}],
        },
    )


def _ingress(
    name: str,
    ns: Namespace,
    selector: dict[str, Any],
    sources: list[dict[str, Any]],
    port_list: list[dict[str, Any]],
) -> PolicySpec:
    return _rule("Ingress", name, ns, selector, sources, port_list)


def _egress(
    name: str,
    ns: Namespace,
    selector: dict[str, Any],
    targets: list[dict[str, Any]],
    port_list: list[dict[str, Any]],
) -> PolicySpec:
    return _rule("Egress", name, ns, selector, targets, port_list)


def _api_server(cfg: PlatformConfig) -> dict[str, Any]:
    # EKS serves the API through ENIs in the VPC; a local cluster's address is not known.
    if cfg.network is not None:
        return {"ipBlock": {"cidr": str(cfg.network.vpc_cidr)}}
    return _anywhere((IMDS,))


def network_policies(cfg: PlatformConfig) -> list[PolicySpec]:
    everyone = enabled_namespaces(cfg)
    specs: list[PolicySpec] = []
    for ns in everyone:
        specs.append(
            PolicySpec(
                "default-deny", ns, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
            )
        )
        specs.append(
            _egress(
                "allow-dns",
                ns,
                {},
                [_pods("kube-system", {"k8s-app": "kube-dns"})],
                [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            )
        )
        # Prometheus scrapes every namespace's metrics ports.
        metrics = [ports.MANAGER_HTTP, ports.COST_ENGINE_HTTP, ports.WORKER_HTTP]
        if cfg.mesh.enabled:
            metrics.append(ENVOY_METRICS)
        specs.append(
            _ingress(
                "allow-prometheus-scrape",
                ns,
                {},
                [_pods(Namespace.MONITORING, {"app.kubernetes.io/name": "prometheus"})],
                _tcp(*metrics),
            )
        )
    runtime_ns = (Namespace.PLATFORM, Namespace.AGENTS)
    runtime_pods = {"matchLabels": {PART_OF_LABEL: PART_OF}}

    # The task API: reached through the ingress gateway (mesh) and by the agent workers.
    callers = [_pods(Namespace.AGENTS, {PART_OF_LABEL: PART_OF})]
    if cfg.mesh.enabled:
        callers.append(_pods(Namespace.MESH, {"istio": "ingressgateway"}))
    specs.append(
        _ingress(
            "allow-manager-api",
            Namespace.PLATFORM,
            _app(MANAGER),
            callers,
            _tcp(ports.MANAGER_HTTP),
        )
    )
    # Alertmanager's webhook closes the loop on the manager (emergency mode).
    specs.append(
        _ingress(
            "allow-alertmanager-webhook",
            Namespace.PLATFORM,
            _app(MANAGER),
            [_pods(Namespace.MONITORING, {"app.kubernetes.io/name": "alertmanager"})],
            _tcp(ports.MANAGER_HTTP),
        )
    )
    specs.append(
        _ingress(
            "allow-cost-engine-api",
            Namespace.PLATFORM,
            _app(COST_ENGINE),
            [
                _pods(Namespace.PLATFORM, {APP_LABEL: MANAGER}),
                _pods(Namespace.AGENTS, {PART_OF_LABEL: PART_OF}),
            ],
            _tcp(ports.COST_ENGINE_HTTP),
        )
    )
    specs.append(
        _egress(
            "allow-runtime-apis",
            Namespace.AGENTS,
            runtime_pods,
            [
                _pods(Namespace.PLATFORM, {APP_LABEL: MANAGER}),
                _pods(Namespace.PLATFORM, {APP_LABEL: COST_ENGINE}),
            ],
            _tcp(ports.MANAGER_HTTP, ports.COST_ENGINE_HTTP),
        )
    )
    specs.append(
        _egress(
            "allow-cost-engine",
            Namespace.PLATFORM,
            _app(MANAGER),
            [_pods(Namespace.PLATFORM, {APP_LABEL: COST_ENGINE})],
            _tcp(ports.COST_ENGINE_HTTP),
        )
    )
    # No manager → agents path: the manager assigns a task by appending it to the agent's inbox
    # stream in Redis and the worker reads it from there, so workers accept no task traffic.
    # Their only ingress is Prometheus scraping /metrics (allow-prometheus-scrape above).
    specs.append(
        _egress(
            "allow-alertmanager-to-manager",
            Namespace.MONITORING,
            {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}},
            [_pods(Namespace.PLATFORM, {APP_LABEL: MANAGER})],
            _tcp(ports.MANAGER_HTTP),
        )
    )

    # Redis: in the platform namespace, or ElastiCache inside the VPC.
    for ns in runtime_ns:
        if cfg.redis.mode is RedisMode.IN_CLUSTER:
            target = _pods(Namespace.PLATFORM, {APP_LABEL: "redis"})
        else:
            assert cfg.network is not None
            target = {"ipBlock": {"cidr": str(cfg.network.vpc_cidr)}}
        specs.append(_egress("allow-redis", ns, runtime_pods, [target], _tcp(ports.REDIS)))
    if cfg.redis.mode is RedisMode.IN_CLUSTER:
        specs.append(
            _ingress(
                "allow-redis-clients",
                Namespace.PLATFORM,
                _app("redis"),
                [_ns(Namespace.PLATFORM), _ns(Namespace.AGENTS)],
                _tcp(ports.REDIS, 26379),
            )
        )

    # Agents call model providers over HTTPS, never the node's instance metadata.
    specs.append(
        _egress(
            "allow-https-egress", Namespace.AGENTS, runtime_pods, [_anywhere((IMDS,))], _tcp(443)
        )
    )

    if cfg.vault.enabled:
        specs.append(
            _ingress(
                "allow-vault-clients",
                Namespace.VAULT,
                _app("vault"),
                [_ns(ns) for ns in runtime_ns],
                _tcp(VAULT_API),
            )
        )
        specs.append(
            _ingress(
                "allow-vault-peers",
                Namespace.VAULT,
                _app("vault"),
                [_pods(Namespace.VAULT, {APP_LABEL: "vault"})],
                _tcp(VAULT_API, VAULT_CLUSTER),
            )
        )
        specs.append(
            _egress(
                "allow-vault-peers-egress",
                Namespace.VAULT,
                _app("vault"),
                [_pods(Namespace.VAULT, {APP_LABEL: "vault"})],
                _tcp(VAULT_API, VAULT_CLUSTER),
            )
        )
        # Token review for the Kubernetes auth method; KMS for auto-unseal.
        specs.append(
            _egress(
                "allow-vault-apis",
                Namespace.VAULT,
                {},
                [_api_server(cfg), _anywhere((IMDS,))],
                _tcp(KUBE_API),
            )
        )
        for ns in runtime_ns:
            specs.append(
                _egress(
                    "allow-vault",
                    ns,
                    runtime_pods,
                    [_pods(Namespace.VAULT, {APP_LABEL: "vault"})],
                    _tcp(VAULT_API),
                )
            )

    if cfg.mesh.enabled:
        for ns in (Namespace.PLATFORM, Namespace.AGENTS, Namespace.VAULT, Namespace.MONITORING):
            specs.append(
                _egress(
                    "allow-istiod",
                    ns,
                    {},
                    [_pods(Namespace.MESH, {"app": "istiod"})],
                    _tcp(*ISTIOD_PORTS),
                )
            )
        specs.append(
            _ingress(
                "allow-istiod",
                Namespace.MESH,
                {"matchLabels": {"app": "istiod"}},
                [{"namespaceSelector": {}}, _api_server(cfg)],
                _tcp(*ISTIOD_PORTS),
            )
        )
        specs.append(
            _ingress(
                "allow-gateway-traffic",
                Namespace.MESH,
                {"matchLabels": {"istio": "ingressgateway"}},
                [_anywhere()],
                _tcp(8080, 8443),
            )
        )
        specs.append(
            _egress(
                "allow-gateway-to-manager",
                Namespace.MESH,
                {"matchLabels": {"istio": "ingressgateway"}},
                [_pods(Namespace.PLATFORM, {APP_LABEL: MANAGER})],
                _tcp(ports.MANAGER_HTTP),
            )
        )
        specs.append(
            _egress(
                "allow-istiod-api",
                Namespace.MESH,
                {"matchLabels": {"app": "istiod"}},
                [_api_server(cfg)],
                _tcp(KUBE_API),
            )
        )

    if cfg.monitoring.enabled:
        specs.append(
            _egress(
                "allow-scrape-and-api",
                Namespace.MONITORING,
                {},
                [{"namespaceSelector": {}}, _api_server(cfg)],
                _tcp(
                    KUBE_API,
                    ports.MANAGER_HTTP,
                    ports.COST_ENGINE_HTTP,
                    ports.WORKER_HTTP,
                    ENVOY_METRICS,
                    9090,
                    9093,
                    9100,
                    9121,
                    10250,
                ),
            )
        )
        specs.append(
            _ingress(
                "allow-monitoring-internal",
                Namespace.MONITORING,
                {},
                [_ns(Namespace.MONITORING)],
                _tcp(9090, 9093, 9094, 3000, 8080),
            )
        )
        # Alert receivers: Slack and PagerDuty over HTTPS, SMTP submission.
        specs.append(
            _egress(
                "allow-alert-receivers",
                Namespace.MONITORING,
                {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}},
                [_anywhere((IMDS,))],
                _tcp(443, 587),
            )
        )
        specs += _alert_producer_flows(cfg)
    return specs


# --- Alert producers (issue 20 item 3) ------------------------------------------------------
# Prometheus scrapes what the alert catalogue reads beyond the runtime: Redis' exporter (in the
# Redis pods, or the ElastiCache exporter in the monitoring namespace) and Vault's telemetry.
# Kept apart so the flows move as one block into a generated flow table.


def _alert_producer_flows(cfg: PlatformConfig) -> list[PolicySpec]:
    prometheus = [_pods(Namespace.MONITORING, PROMETHEUS_POD)]
    scraper = {"matchLabels": PROMETHEUS_POD}
    exporter = _tcp(REDIS_EXPORTER_PORT)
    specs: list[PolicySpec] = []
    if cfg.redis.mode is RedisMode.IN_CLUSTER:
        specs.append(
            _ingress(
                "allow-prometheus-redis-exporter",
                Namespace.PLATFORM,
                _app("redis"),
                prometheus,
                exporter,
            )
        )
    else:
        assert cfg.network is not None
        selector = {"matchLabels": {"app.kubernetes.io/instance": REDIS_EXPORTER_RELEASE}}
        specs.append(
            _ingress(
                "allow-prometheus-redis-exporter",
                Namespace.MONITORING,
                selector,
                prometheus,
                exporter,
            )
        )
        specs.append(
            _egress(
                "allow-redis-exporter-to-elasticache",
                Namespace.MONITORING,
                selector,
                [{"ipBlock": {"cidr": str(cfg.network.vpc_cidr)}}],
                _tcp(ports.REDIS),
            )
        )
    if cfg.vault.enabled:
        specs.append(
            _ingress(
                "allow-prometheus-vault",
                Namespace.VAULT,
                _app("vault"),
                prometheus,
                _tcp(VAULT_API),
            )
        )
        specs.append(
            _egress(
                "allow-prometheus-to-vault",
                Namespace.MONITORING,
                scraper,
                [_pods(Namespace.VAULT, {APP_LABEL: "vault"})],
                _tcp(VAULT_API),
            )
        )
    return specs
