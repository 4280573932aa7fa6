"""The flow table: every connection the platform needs, per stack, and why.

Pure data derived from the config. The NetworkPolicies (`network_policies.py`) and the Istio
authorization (`mesh_policies.py`) are generated from it and from nothing else; the analyzers
in infra/plan/connectivity.py (run by `agentops plan` and tests/flows) prove that exactly these
flows get through.

A workload is what a policy can select: pods of one namespace with given labels (empty labels:
every pod of the namespace) and, where the mesh sees it, the SPIFFE identity of its service
account. Chart workloads carry the labels and service accounts their charts render at the
versions pinned in contracts/versions.py; the template each comes from is named next to it.
A network is an address range outside the pods: the API server, the nodes, the internet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from contracts import endpoints, ports
from contracts.config import AgentPoolConfig, PlatformConfig, RedisMode, UnsealMode
from infra.platform.logship import FLUENT_BIT
from infra.platform.metric_producers import VAULT_METRICS_PATH
from infra.platform.names import (
    APP_LABEL,
    COMPONENT_LABEL,
    COST_ENGINE,
    DATABASE_SERVICE,
    MANAGER,
    Namespace,
    pool_workload,
    tool_server_workload,
)
from infra.platform.runtime_secrets import VAULT_API_PORT, VAULT_CLUSTER_PORT
from infra.platform.scheduling import AUTOSCALER_SERVICE_ACCOUNT
from infra.platform.tracing import OTLP_HTTP
from infra.platform.vault_access import ApiOperation, vault_identities

__all__ = [
    "DNS_PORT",
    "INJECTED",
    "VAULT_API",
    "VAULT_CLUSTER",
    "Flow",
    "Network",
    "Peer",
    "Protocol",
    "Workload",
    "flow_table",
    "flows",
    "networks",
    "workloads",
]

INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
KUBE_SYSTEM: Final = "kube-system"
IMDS: Final = "169.254.169.254/32"
ANYWHERE: Final = "0.0.0.0/0"
DNS_PORT: Final = 53
HTTPS: Final = 443
# Ports Istio's sidecar serves itself (merged metrics, health, Envoy stats): outside the inbound
# chain, so no AuthorizationPolicy decides them.
SIDECAR_OWN_PORTS: Final = frozenset({15020, 15021, 15090})
ENVOY_METRICS: Final = 15020

# Namespaces whose pods get an Istio sidecar where the mesh runs. Not the mesh itself, and not
# Vault's namespace: its injector is the API server's webhook (plaintext caller); the Vault
# servers alone join the mesh, by their pods' `sidecar.istio.io/inject` label (vault layer).
INJECTED: Final = (Namespace.PLATFORM, Namespace.AGENTS, Namespace.MONITORING)
# Vault's API (behind the mesh: plaintext listener, the sidecar's mTLS and path-level policy) and
# its cluster port (raft and request forwarding between the servers: Vault's own mutual TLS,
# excluded from the sidecar's capture in and out).
VAULT_API: Final = VAULT_API_PORT
VAULT_CLUSTER: Final = VAULT_CLUSTER_PORT


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"


@dataclass(frozen=True)
class Workload:
    """Pods a policy selects: namespace + labels (empty: all of the namespace)."""

    key: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    service_account: str | None
    source: str  # where the labels and the service account come from
    injected: bool = False  # an Istio proxy authorizes calls into it (sidecar or gateway)
    host_network: bool = False  # runs in the node's network: NetworkPolicies cannot select it
    edge: bool = False  # the ingress gateway: takes callers' TLS, not the mesh's mTLS
    # Ports its sidecar does not capture (traffic.sidecar.istio.io/exclude*Ports): no
    # AuthorizationPolicy decides them, the NetworkPolicies alone do.
    bypass_ports: tuple[int, ...] = ()

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def principal(self) -> str | None:
        """The SPIFFE identity Istio gives the workload (None outside the mesh)."""
        if not self.injected or self.service_account is None:
            return None
        return f"cluster.local/ns/{self.namespace}/sa/{self.service_account}"


@dataclass(frozen=True)
class Network:
    """Addresses outside the pods."""

    key: str
    cidr: str
    excepted: tuple[str, ...] = ()
    why: str = ""


Peer = Workload | Network


@dataclass(frozen=True)
class Flow:
    name: str
    source: Peer
    destination: Peer
    ports: tuple[int, ...]
    why: str
    protocol: Protocol = Protocol.TCP
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    # The caller must also present a JWT the mesh validates (RequestAuthentication).
    caller_jwt: bool = False
    # Sent by a sidecar itself (outside its own redirection): plaintext, no peer identity.
    from_sidecar: bool = False
    # DNS names the destination (a network) must have: NetworkPolicies cannot say it (they allow
    # the network's addresses on these ports); the mesh does (a ServiceEntry for each name and
    # REGISTRY_ONLY outbound for the source, see mesh_policies.mesh_egress).
    hosts: tuple[str, ...] = ()
    # Several (methods, paths) pairs where one pair cannot say it (Vault's API: login and
    # writes, reads); each one an operation of the flow's AuthorizationPolicy rule.
    operations: tuple[ApiOperation, ...] = ()

    @property
    def mesh_ports(self) -> tuple[int, ...]:
        """Ports of this flow the destination's sidecar authorizes (empty: the mesh sees none)."""
        dst = self.destination
        if not isinstance(dst, Workload) or not dst.injected:
            return ()
        return tuple(p for p in self.ports if p not in SIDECAR_OWN_PORTS | set(dst.bypass_ports))

    @property
    def http(self) -> tuple[ApiOperation, ...]:
        """The HTTP operations the mesh allows on this flow (empty: any, or TCP)."""
        if self.operations:
            return self.operations
        if self.methods or self.paths:
            return (ApiOperation(self.methods, self.paths),)
        return ()

    @property
    def plaintext(self) -> bool:
        """Arrives without Istio mTLS: from outside the mesh or from a sidecar itself."""
        return (
            self.from_sidecar or not isinstance(self.source, Workload) or not self.source.injected
        )


def _labels(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


def _with(*pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs))


@dataclass
class _Catalogue:
    """The stack's workloads and networks, by key."""

    cfg: PlatformConfig
    found: dict[str, Workload] = field(default_factory=dict)

    def add(
        self,
        key: str,
        namespace: str,
        labels: tuple[tuple[str, str], ...],
        service_account: str | None,
        source: str,
        *,
        host_network: bool = False,
        proxy: bool = False,
        sidecar: bool = False,
        bypass_ports: tuple[int, ...] = (),
    ) -> Workload:
        # `proxy`: an Envoy of its own (the gateway), authorized by the mesh like a sidecar.
        # `sidecar`: pods labelled for injection outside the INJECTED namespaces.
        injected = self.cfg.mesh.enabled and (
            proxy or sidecar or (not host_network and namespace in {ns.value for ns in INJECTED})
        )
        w = Workload(
            key,
            namespace,
            labels,
            service_account,
            source,
            injected,
            host_network,
            edge=proxy,
            bypass_ports=bypass_ports if injected else (),
        )
        self.found[key] = w
        return w


def networks(cfg: PlatformConfig) -> dict[str, Network]:
    vpc = str(cfg.network.vpc_cidr) if cfg.network is not None else None
    internet = Network("internet", ANYWHERE, (IMDS,), "anywhere but the node's instance metadata")
    return {
        "internet": internet,
        # EKS serves the API through ENIs in the cluster's subnets; a local cluster's control
        # plane has no address the config knows, so it is anywhere but the metadata service.
        "api-server": Network(
            "api-server",
            vpc or ANYWHERE,
            () if vpc else (IMDS,),
            "the Kubernetes API server (EKS control-plane ENIs in the VPC)",
        ),
        "nodes": Network(
            "nodes", vpc or ANYWHERE, () if vpc else (IMDS,), "the nodes: kubelet, host network"
        ),
        "vpc": Network("vpc", vpc or ANYWHERE, () if vpc else (IMDS,), "inside the VPC"),
    }


def workloads(cfg: PlatformConfig) -> dict[str, Workload]:
    """Every workload of the stack, ours and the charts', by key."""
    c = _Catalogue(cfg)
    platform, agents = Namespace.PLATFORM.value, Namespace.AGENTS.value
    mesh, monitoring, vault = (
        Namespace.MESH.value,
        Namespace.MONITORING.value,
        Namespace.VAULT.value,
    )
    ours = "infra/layers/agents.py: app.kubernetes.io/name and ServiceAccount = the service"
    c.add(MANAGER, platform, _labels(**{APP_LABEL: MANAGER}), MANAGER, ours)
    c.add(COST_ENGINE, platform, _labels(**{APP_LABEL: COST_ENGINE}), COST_ENGINE, ours)
    for pool in cfg.agents.pools:
        name = pool_workload(pool.name)
        c.add(name, agents, _labels(**{APP_LABEL: name}), name, ours)
    for server in cfg.agents.tool_servers:
        name = tool_server_workload(server.name)
        c.add(name, agents, _labels(**{APP_LABEL: name}), name, ours)
    for ns in (platform, agents, *(n.value for n in _layer_namespaces(cfg))):
        c.add(f"pods:{ns}", ns, (), None, "every pod of the namespace")
    c.add(
        "kube-dns",
        KUBE_SYSTEM,
        _labels(**{"k8s-app": "kube-dns"}),
        "coredns",
        "EKS coredns add-on / kubeadm CoreDNS Deployment",
    )

    _scaling_workloads(c)
    _log_shipper_workload(c)
    if cfg.database_pools() and not cfg.on_aws:
        c.add(
            "database",
            Namespace.PLATFORM.value,
            _labels(**{APP_LABEL: DATABASE_SERVICE}),
            DATABASE_SERVICE,
            "infra/layers/database.py: the local stack's PostgreSQL StatefulSet",
        )

    if cfg.redis.mode is RedisMode.IN_CLUSTER:
        bitnami = f"bitnami/redis {_chart('redis')} templates/{{master,replicas,sentinel}}/"
        redis = {INSTANCE_LABEL: "redis", APP_LABEL: "redis"}
        sa = "redis"  # serviceAccount.create: true, name = common.names.fullname
        if cfg.redis.in_cluster.sentinel:
            # Sentinel mode: one StatefulSet `redis-node` runs redis + sentinel in every pod.
            c.add(
                "redis-node",
                platform,
                _labels(**redis, **{COMPONENT_LABEL: "node"}),
                sa,
                bitnami + "statefulset.yaml",
            )
        else:
            c.add(
                "redis-master",
                platform,
                _labels(**redis, **{COMPONENT_LABEL: "master"}),
                sa,
                bitnami + "application.yaml",
            )
            c.add(
                "redis-replicas",
                platform,
                _labels(**redis, **{COMPONENT_LABEL: "replica"}),
                sa,
                bitnami + "statefulset.yaml",
            )

    if cfg.mesh.enabled:
        istio = f"istio/istio {_istio(cfg)} manifests/charts"
        c.add(
            "ingress-gateway",
            mesh,
            # The gateway chart labels its pods with `values.labels` and app/istio = release.
            _labels(app="istio-ingressgateway", istio="ingressgateway"),
            "istio-ingressgateway",
            f"{istio}/gateway/templates/deployment.yaml (serviceAccount = release name)",
            proxy=True,
        )
        c.add(
            "istiod",
            mesh,
            _labels(app="istiod", istio="pilot"),
            "istiod",
            f"{istio}/istio-control/istio-discovery/templates/deployment.yaml",
        )
        c.add(
            "istio-cni",
            mesh,
            _labels(**{"k8s-app": "istio-cni-node"}),
            "istio-cni",
            f"{istio}/istio-cni/templates/daemonset.yaml (hostNetwork)",
            host_network=True,
        )

    if cfg.vault.enabled:
        hashicorp = f"hashicorp/vault {_chart('vault')} templates/"
        c.add(
            "vault",
            vault,
            _labels(**{APP_LABEL: "vault", INSTANCE_LABEL: "vault", COMPONENT_LABEL: "server"}),
            "vault",  # server.serviceAccount.name (infra/layers/vault.py)
            # server.extraLabels `sidecar.istio.io/inject: "true"` and server.annotations
            # excluding the cluster port from the sidecar (infra/layers/vault.py).
            hashicorp + "server-statefulset.yaml",
            sidecar=True,
            bypass_ports=(VAULT_CLUSTER,),
        )
        c.add(
            "vault-agent-injector",
            vault,
            _labels(
                **{
                    APP_LABEL: "vault-agent-injector",
                    INSTANCE_LABEL: "vault",
                    COMPONENT_LABEL: "webhook",
                }
            ),
            "vault-agent-injector",
            hashicorp + "injector-deployment.yaml",
        )

    if cfg.monitoring.enabled:
        kps = f"prometheus-community/kube-prometheus-stack {_chart('kube-prometheus-stack')}"
        c.add(
            "prometheus",
            monitoring,
            _labels(**{APP_LABEL: "prometheus", "prometheus": "kube-prometheus-stack-prometheus"}),
            "kube-prometheus-stack-prometheus",
            f"{kps} templates/prometheus/prometheus.yaml (operator-set pod labels)",
        )
        c.add(
            "alertmanager",
            monitoring,
            _labels(
                **{APP_LABEL: "alertmanager", "alertmanager": "kube-prometheus-stack-alertmanager"}
            ),
            "kube-prometheus-stack-alertmanager",
            f"{kps} templates/alertmanager/alertmanager.yaml (operator-set pod labels)",
        )
        c.add(
            "prometheus-operator",
            monitoring,
            _labels(app="kube-prometheus-stack-operator", release="kube-prometheus-stack"),
            "kube-prometheus-stack-operator",
            f"{kps} templates/prometheus-operator/deployment.yaml",
        )
        c.add(
            "grafana",
            monitoring,
            _labels(**{APP_LABEL: "grafana", INSTANCE_LABEL: "kube-prometheus-stack"}),
            "kube-prometheus-stack-grafana",
            f"{kps} charts/grafana templates/_pod.tpl",
        )
        c.add(
            "kube-state-metrics",
            monitoring,
            _labels(**{APP_LABEL: "kube-state-metrics", INSTANCE_LABEL: "kube-prometheus-stack"}),
            "kube-prometheus-stack-kube-state-metrics",
            f"{kps} charts/kube-state-metrics templates/deployment.yaml",
        )
        c.add(
            "node-exporter",
            monitoring,
            _labels(
                **{APP_LABEL: "prometheus-node-exporter", INSTANCE_LABEL: "kube-prometheus-stack"}
            ),
            "kube-prometheus-stack-prometheus-node-exporter",
            f"{kps} charts/prometheus-node-exporter templates/daemonset.yaml (hostNetwork)",
            host_network=True,
        )
        c.add(
            "prometheus-adapter",
            monitoring,
            _labels(**{APP_LABEL: "prometheus-adapter", INSTANCE_LABEL: "prometheus-adapter"}),
            "prometheus-adapter",
            f"prometheus-community/prometheus-adapter {_chart('prometheus-adapter')} "
            "templates/deployment.yaml",
        )
        if cfg.redis.mode is not RedisMode.IN_CLUSTER:
            c.add(
                "redis-exporter",
                monitoring,
                _labels(
                    **{APP_LABEL: "prometheus-redis-exporter", INSTANCE_LABEL: "redis-exporter"}
                ),
                "redis-exporter",
                "prometheus-community/prometheus-redis-exporter "
                f"{_chart('prometheus-redis-exporter')} templates/deployment.yaml "
                "(fullnameOverride redis-exporter, infra/platform/metric_producers.py)",
            )
        if cfg.monitoring.tracing:
            c.add(
                "otel-collector",
                monitoring,
                _labels(
                    **{
                        APP_LABEL: "opentelemetry-collector",
                        INSTANCE_LABEL: "otel-collector",
                        COMPONENT_LABEL: "standalone-collector",
                    }
                ),
                "otel-collector-opentelemetry-collector",
                "open-telemetry/opentelemetry-collector "
                f"{_chart('opentelemetry-collector')} templates/deployment.yaml",
            )
            c.add(
                "jaeger",
                monitoring,
                _labels(
                    **{
                        APP_LABEL: "jaeger",
                        INSTANCE_LABEL: "jaeger",
                        COMPONENT_LABEL: "all-in-one",
                    }
                ),
                "jaeger",
                f"jaegertracing/jaeger {_chart('jaeger')} templates/allinone-deploy.yaml",
            )
    return c.found


def _scaling_workloads(c: _Catalogue) -> None:
    """The scaling layer's add-ons in kube-system (infra/layers/scaling.py). The NVIDIA device
    plugin has no flow: it talks to the kubelet over a node-local Unix socket
    (/var/lib/kubelet/device-plugins) and to nothing on the network."""
    c.add(
        "metrics-server",
        KUBE_SYSTEM,
        # selectorLabels: name = chart name, instance = release; SA = fullname (release name
        # contains the chart name).
        _labels(**{APP_LABEL: "metrics-server", INSTANCE_LABEL: "metrics-server"}),
        "metrics-server",
        f"kubernetes-sigs/metrics-server {_chart('metrics-server')} "
        "templates/_helpers.tpl (selectorLabels, serviceAccountName), deployment.yaml",
    )
    if c.cfg.cluster is not None:
        from contracts.versions import for_minor

        chart = for_minor(c.cfg.kubernetes_version).cluster_autoscaler_chart
        c.add(
            "cluster-autoscaler",
            KUBE_SYSTEM,
            # instance-name: name = "<cloudProvider>-<chart>", instance = release.
            _labels(**{APP_LABEL: "aws-cluster-autoscaler", INSTANCE_LABEL: "cluster-autoscaler"}),
            AUTOSCALER_SERVICE_ACCOUNT,  # rbac.serviceAccount.name
            f"kubernetes/autoscaler cluster-autoscaler {chart} "
            "templates/_helpers.tpl (cluster-autoscaler.instance-name), deployment.yaml",
        )


def _log_shipper_workload(c: _Catalogue) -> None:
    """Fluent Bit in kube-system where logs leave the node (infra/layers/logs.py)."""
    if c.cfg.cluster is None or not c.cfg.monitoring.logs.enabled:
        return
    c.add(
        FLUENT_BIT,
        KUBE_SYSTEM,
        # selectorLabels: name = chart name, instance = release; SA = serviceAccount.name.
        _labels(**{APP_LABEL: FLUENT_BIT, INSTANCE_LABEL: FLUENT_BIT}),
        FLUENT_BIT,
        f"fluent/fluent-bit {_chart(FLUENT_BIT)} templates/_helpers.tpl (fluent-bit.selectorLabels)"
        ", daemonset.yaml",
    )


def _chart(name: str) -> str:
    from contracts.versions import CHARTS

    return CHARTS[name].version


def _istio(cfg: PlatformConfig) -> str:
    from contracts.versions import for_minor

    return for_minor(cfg.kubernetes_version).istio


def _layer_namespaces(cfg: PlatformConfig) -> Iterator[Namespace]:
    if cfg.mesh.enabled:
        yield Namespace.MESH
    if cfg.monitoring.enabled:
        yield Namespace.MONITORING
    if cfg.vault.enabled:
        yield Namespace.VAULT


def _paths(prefix: str) -> tuple[str, ...]:
    return (prefix, f"{prefix}/*")


def flows(cfg: PlatformConfig) -> list[Flow]:
    """Every connection the stack needs. Adding a pool adds exactly that pool's flows."""
    w = workloads(cfg)
    net = networks(cfg)
    out: list[Flow] = []
    add = out.append
    manager, cost = w[MANAGER], w[COST_ENGINE]
    pools = [w[pool_workload(p.name)] for p in cfg.agents.pools]
    runtime = [manager, cost, *pools]
    mesh_on = cfg.mesh.enabled

    # ---- every namespace: DNS ---------------------------------------------------------------
    for key in sorted(k for k in w if k.startswith("pods:")):
        ns = w[key].namespace
        for proto in (Protocol.UDP, Protocol.TCP):
            add(
                Flow(
                    f"dns-{proto.value.lower()}-{ns}",
                    w[key],
                    w["kube-dns"],
                    (DNS_PORT,),
                    "every pod resolves Service names through CoreDNS",
                    protocol=proto,
                )
            )

    # ---- the task API and the runtime's own calls -------------------------------------------
    if mesh_on:
        gateway = w["ingress-gateway"]
        add(
            Flow(
                "internet-to-gateway",
                net["internet"],
                gateway,
                (80, 443),
                "callers reach the task API through the ingress gateway (HTTP redirects to TLS)",
            )
        )
        add(
            Flow(
                "lb-health-to-gateway",
                net["vpc"],
                gateway,
                (15021,),
                "the load balancer's health checks of the gateway's readiness port",
            )
        )
        add(
            Flow(
                "gateway-to-manager",
                gateway,
                manager,
                (ports.MANAGER_HTTP,),
                "the task API, routed by the VirtualService (blue/green)",
                methods=("GET", "POST"),
                paths=_paths(endpoints.TASKS_API),
                caller_jwt=cfg.mesh.jwt is not None,
            )
        )
    for pool in pools:
        add(
            Flow(
                f"{pool.key}-to-manager",
                pool,
                manager,
                (ports.MANAGER_HTTP,),
                "workers register, heartbeat and report results on the agent API",
                paths=_paths(endpoints.AGENTS_API),
            )
        )
    for caller in (manager, *pools):
        add(
            Flow(
                f"{caller.key}-to-cost-engine",
                caller,
                cost,
                (ports.COST_ENGINE_HTTP,),
                "usage, budgets, reservations and model recommendations",
                paths=_paths(endpoints.COST_API),
            )
        )
    for pool_cfg, pool in zip(cfg.agents.pools, pools, strict=True):
        out.extend(_pool_egress(pool_cfg, pool, net, cfg.pool_storage_hosts(pool_cfg.name)))

    # ---- MCP tool servers: only the pools a server allows reach it ---------------------------
    out.extend(_tool_server_flows(cfg, w))

    # ---- the optional PostgreSQL: the pools it allows, and Vault that makes their logins -----
    out.extend(_database_flows(cfg, w, net))

    # ---- Redis: the queues and the ledger ----------------------------------------------------
    out.extend(_redis_flows(cfg, w, net, runtime))

    # ---- Vault ---------------------------------------------------------------------------------
    if cfg.vault.enabled:
        # The tool servers' injected Vault Agents log in and read their secrets too.
        servers = [w[tool_server_workload(t.name)] for t in cfg.agents.tool_servers]
        out.extend(_vault_flows(cfg, w, net, [*runtime, *servers]))

    # ---- the mesh's control plane --------------------------------------------------------------
    if mesh_on:
        out.extend(_mesh_flows(cfg, w, net))

    # ---- monitoring ----------------------------------------------------------------------------
    if cfg.monitoring.enabled:
        out.extend(_monitoring_flows(cfg, w, net, runtime))

    # ---- scaling add-ons in kube-system ---------------------------------------------------------
    out.extend(_scaling_flows(w, net))
    out.extend(_log_shipper_flows(w, net))
    names = [f.name for f in out]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"flow names must be unique: {sorted(duplicates)}")
    return out


def _tool_server_flows(cfg: PlatformConfig, w: dict[str, Workload]) -> Iterator[Flow]:
    for server in cfg.agents.tool_servers:
        target = w[tool_server_workload(server.name)]
        for pool in server.allowed_pools:
            caller = w[pool_workload(pool)]
            yield Flow(
                f"{caller.key}-to-{target.key}",
                caller,
                target,
                (server.port,),
                f"the pool's workers call the MCP tools of {server.name} (streamable HTTP)",
                methods=("GET", "POST", "DELETE"),
                paths=_paths(server.path),
            )
        # The same fields make the server's ServiceMonitor (metric_producers.tool_server_monitors).
        if cfg.monitoring.enabled and server.metrics_path is not None:
            yield Flow(
                f"prometheus-scrapes-{target.key}",
                w["prometheus"],
                target,
                (server.port,),
                "the tool server's metrics",
                methods=("GET",),
                paths=(server.metrics_path,),
            )


def _pool_egress(
    pool_cfg: AgentPoolConfig,
    pool: Workload,
    net: dict[str, Network],
    storage_hosts: tuple[str, ...],
) -> list[Flow]:
    """What a pool reaches outside the cluster: its own provider's host (llm handler), its own
    bucket's S3 endpoint and regional STS (storage on) and, with IRSA rights, the AWS APIs. A
    pool on the work handler without storage or AWS rights reaches none of them."""
    found = []
    if pool_cfg.provider is not None:
        found.append(
            Flow(
                f"{pool.key}-to-model-provider",
                pool,
                net["internet"],
                (pool_cfg.provider.port,),
                f"the llm handler calls its provider {pool_cfg.provider.base_url} (this host only)",
                hosts=(pool_cfg.provider.host,),
            )
        )
    if storage_hosts:
        found.append(
            Flow(
                f"{pool.key}-to-storage",
                pool,
                net["internet"],
                (HTTPS,),
                "task artifacts in the pool's own bucket (SSE-KMS; S3 asks KMS itself), with "
                "its IRSA role's web identity exchanged at regional STS",
                hosts=storage_hosts,
            )
        )
    if pool_cfg.aws_policy_arns:
        found.append(
            Flow(
                f"{pool.key}-to-aws-apis",
                pool,
                net["internet"],
                (HTTPS,),
                "the pool's IRSA role calls AWS APIs (STS and the services its policies name)",
            )
        )
    return found


def _database_flows(
    cfg: PlatformConfig, w: dict[str, Workload], net: dict[str, Network]
) -> Iterator[Flow]:
    """The allowed pools and Vault reach PostgreSQL on 5432: RDS in the VPC's private subnets,
    or the local stack's in-cluster server."""
    server: Peer = w.get("database") or net["vpc"]
    where = "RDS" if server is net["vpc"] else "in-cluster"
    for pool in cfg.database_pools():
        client = w[pool_workload(pool)]
        yield Flow(
            f"{client.key}-to-database",
            client,
            server,
            (ports.POSTGRES,),
            f"the pool's own schema in the platform's PostgreSQL ({where}), with a Vault login",
        )
    if cfg.database_pools() and cfg.vault.enabled:
        yield Flow(
            "vault-to-database",
            w["vault"],
            server,
            (ports.POSTGRES,),
            "Vault's database secrets engine creates and drops the pools' logins",
        )


def _redis_flows(
    cfg: PlatformConfig, w: dict[str, Workload], net: dict[str, Network], runtime: list[Workload]
) -> Iterator[Flow]:
    if cfg.redis.mode is not RedisMode.IN_CLUSTER:
        for client in runtime:
            yield Flow(
                f"{client.key}-to-elasticache",
                client,
                net["vpc"],
                (ports.REDIS,),
                "queues, inbox streams and the usage ledger in ElastiCache (in the VPC)",
            )
        return
    sentinel = cfg.redis.in_cluster.sentinel
    primary = w["redis-node"] if sentinel else w["redis-master"]
    redis_ports = (ports.REDIS, 26379) if sentinel else (ports.REDIS,)
    for client in runtime:
        yield Flow(
            f"{client.key}-to-redis",
            client,
            primary,
            redis_ports,
            "queues, inbox streams and the usage ledger (Sentinel names the primary)"
            if sentinel
            else "queues, inbox streams and the usage ledger",
        )
    if sentinel:
        yield Flow(
            "redis-node-peers",
            primary,
            primary,
            redis_ports,
            "replication and Sentinel's quorum between the Redis pods",
        )
    else:
        yield Flow(
            "redis-replicas-to-master",
            w["redis-replicas"],
            primary,
            (ports.REDIS,),
            "replicas follow the primary",
        )


def _vault_flows(
    cfg: PlatformConfig, w: dict[str, Workload], net: dict[str, Network], runtime: list[Workload]
) -> Iterator[Flow]:
    vault, injector = w["vault"], w["vault-agent-injector"]
    # Each client's requests on Vault's API, from its policy (vault_access): in the mesh the
    # Vault servers' sidecars let nothing else through — no sys/ path (unseal, seal-status,
    # health, init, generate-root, rekey, step-down, …) answers a client. Vault's own readiness
    # probe is `vault status` exec'd in its container (on 127.0.0.1, not through the sidecar);
    # operators reach the API by `kubectl port-forward`/`exec`, also inside the pod.
    operations = {i.name: i.operations for i in vault_identities(cfg)}
    for client in runtime:
        assert client.service_account is not None
        yield Flow(
            f"{client.key}-to-vault",
            client,
            vault,
            (VAULT_API,),
            "the injected Vault Agent and the runtime log in (Kubernetes auth) and read KV",
            operations=operations[client.service_account],
        )
    yield Flow(
        "vault-peers",
        vault,
        vault,
        (VAULT_API, VAULT_CLUSTER),
        "raft join (sys/storage/raft on the API port), replication and request forwarding",
    )
    yield Flow(
        "vault-to-api-server",
        vault,
        net["api-server"],
        (HTTPS,),
        "TokenReview of the Kubernetes auth method",
    )
    if cfg.vault.unseal is UnsealMode.AWS_KMS:
        yield Flow(
            "vault-to-aws-kms",
            vault,
            net["internet"],
            (HTTPS,),
            "auto-unseal with AWS KMS (and STS for IRSA)",
        )
    yield Flow(
        "api-server-to-vault-injector",
        net["api-server"],
        injector,
        (8080,),
        "the mutating admission webhook that injects the Vault Agent",
    )
    yield Flow(
        "vault-injector-to-api-server",
        injector,
        net["api-server"],
        (HTTPS,),
        "the injector watches its webhook configuration and pods",
    )


def _mesh_flows(
    cfg: PlatformConfig, w: dict[str, Workload], net: dict[str, Network]
) -> Iterator[Flow]:
    istiod, gateway = w["istiod"], w["ingress-gateway"]
    proxies = [gateway, *(w[f"pods:{ns.value}"] for ns in INJECTED if f"pods:{ns.value}" in w)]
    for proxy in proxies:
        yield Flow(
            f"{proxy.key.replace('pods:', '')}-to-istiod",
            proxy,
            istiod,
            (15012,),
            "sidecars and the gateway fetch config (xDS) and workload certificates",
        )
    yield Flow(
        "api-server-to-istiod",
        net["api-server"],
        istiod,
        (15017,),
        "sidecar injection and config validation webhooks",
    )
    yield Flow(
        "istiod-to-api-server",
        istiod,
        net["api-server"],
        (HTTPS,),
        "istiod watches the cluster's services, endpoints and Istio config",
    )
    if cfg.monitoring.enabled:
        yield Flow(
            "prometheus-to-istiod",
            w["prometheus"],
            istiod,
            (15014,),
            "control-plane metrics",
        )
        if cfg.monitoring.tracing:
            for proxy in proxies:
                yield Flow(
                    f"{proxy.key.replace('pods:', '')}-spans-to-otel",
                    proxy,
                    w["otel-collector"],
                    (4317,),
                    "Envoy sends trace spans (meshConfig extension provider otel)",
                    from_sidecar=True,
                )
    yield Flow(
        "istio-cni-to-api-server",
        w["istio-cni"],
        net["api-server"],
        (HTTPS,),
        "the CNI node agent watches pods (host network: outside NetworkPolicies)",
    )


def _monitoring_flows(
    cfg: PlatformConfig, w: dict[str, Workload], net: dict[str, Network], runtime: list[Workload]
) -> Iterator[Flow]:
    prom, am = w["prometheus"], w["alertmanager"]
    metrics = (endpoints.METRICS,)
    for target in runtime:
        port = {MANAGER: ports.MANAGER_HTTP, COST_ENGINE: ports.COST_ENGINE_HTTP}.get(
            target.key, ports.WORKER_HTTP
        )
        yield Flow(
            f"prometheus-scrapes-{target.key}",
            prom,
            target,
            (port,),
            "the runtime's /metrics (the queue length feeds the HPAs)",
            methods=("GET",),
            paths=metrics,
        )
    if cfg.mesh.enabled:
        for ns in INJECTED:
            yield Flow(
                f"prometheus-scrapes-envoy-{ns.value}",
                prom,
                w[f"pods:{ns.value}"],
                (ENVOY_METRICS,),
                "Istio's merged sidecar metrics",
            )
    if cfg.redis.mode is RedisMode.IN_CLUSTER:
        for key in ("redis-node", "redis-master", "redis-replicas"):
            if key in w:
                yield Flow(
                    f"prometheus-scrapes-{key}",
                    prom,
                    w[key],
                    (9121,),
                    "the Redis exporter sidecar",
                )
    if "redis-exporter" in w:
        # ElastiCache runs no exporter: redis_exporter in the monitoring namespace reads it.
        yield Flow(
            "prometheus-scrapes-redis-exporter",
            prom,
            w["redis-exporter"],
            (9121,),
            "Redis metrics for the alert catalogue (ElastiCache)",
        )
        yield Flow(
            "redis-exporter-to-elasticache",
            w["redis-exporter"],
            net["vpc"],
            (ports.REDIS,),
            "the exporter reads INFO from the ElastiCache primary over TLS",
        )
    if cfg.vault.enabled:
        yield Flow(
            "prometheus-scrapes-vault",
            prom,
            w["vault"],
            (VAULT_API,),
            "Vault's telemetry (/v1/sys/metrics) for the alert catalogue",
            methods=("GET",),
            paths=(VAULT_METRICS_PATH,),
        )
    scraped = (
        ("alertmanager", 9093),
        ("grafana", 3000),
        ("kube-state-metrics", 8080),
        ("prometheus-operator", 10250),
    )
    for key, port in scraped:
        yield Flow(f"prometheus-scrapes-{key}", prom, w[key], (port,), "the chart's ServiceMonitor")
    yield Flow(
        "prometheus-scrapes-nodes",
        prom,
        net["nodes"],
        (9100, 10250),
        "node-exporter (host network) and the kubelet's cAdvisor",
    )
    yield Flow(
        "prometheus-to-alertmanager",
        prom,
        am,
        (9093,),
        "firing alerts",
        methods=("POST",),
        paths=("/api/v2/alerts",),
    )
    yield Flow(
        "alertmanager-to-manager",
        am,
        w[MANAGER],
        (ports.MANAGER_HTTP,),
        "the critical success-rate alert switches the manager to emergency mode",
        methods=("POST",),
        paths=(endpoints.ALERT_WEBHOOK,),
    )
    yield Flow(
        "alertmanager-to-receivers",
        am,
        net["internet"],
        (HTTPS, 587),
        "Slack and PagerDuty over HTTPS, e-mail over SMTP submission",
    )
    yield Flow(
        "grafana-to-prometheus",
        w["grafana"],
        prom,
        (9090,),
        "dashboards query Prometheus",
        paths=("/api/v1/*",),
    )
    yield Flow(
        "adapter-to-prometheus",
        w["prometheus-adapter"],
        prom,
        (9090,),
        "the queue length behind the external-metrics API",
        methods=("GET", "POST"),
        paths=("/api/v1/*",),
    )
    yield Flow(
        "api-server-to-adapter",
        net["api-server"],
        w["prometheus-adapter"],
        (6443,),
        "the aggregated external-metrics API the HPAs read",
    )
    yield Flow(
        "api-server-to-prometheus-operator",
        net["api-server"],
        w["prometheus-operator"],
        (10250,),
        "the admission webhook validating PrometheusRules",
    )
    for key in ("prometheus", "prometheus-operator", "kube-state-metrics", "prometheus-adapter"):
        yield Flow(
            f"{key}-to-api-server",
            w[key],
            net["api-server"],
            (HTTPS,),
            "service discovery, the operator's reconciliation, object state, TokenReview",
        )
    yield Flow(
        "grafana-to-api-server",
        w["grafana"],
        net["api-server"],
        (HTTPS,),
        "the dashboard sidecar reads the dashboards' ConfigMaps",
    )
    if cfg.monitoring.tracing:
        yield Flow(
            "otel-to-jaeger",
            w["otel-collector"],
            w["jaeger"],
            (4317,),
            "the collector exports traces to Jaeger over OTLP",
        )
        for source in runtime:
            yield Flow(
                f"{source.key}-spans-to-otel",
                source,
                w["otel-collector"],
                (OTLP_HTTP,),
                "the runtime exports its spans over OTLP/HTTP (infra/platform/tracing.py)",
            )


def _scaling_flows(w: dict[str, Workload], net: dict[str, Network]) -> Iterator[Flow]:
    """kube-system is not the platform's namespace: no policy of ours selects these pods, so
    the flows are allowed there by default and the analyzers check that nothing (ours or
    another policy) refuses them, and that these pods reach nothing of ours outside them."""
    metrics = w["metrics-server"]
    yield Flow(
        "api-server-to-metrics-server",
        net["api-server"],
        metrics,
        (10250,),
        "the aggregated metrics.k8s.io APIService (CPU and memory the HPAs read); the Service's "
        "443 targets the pod's 10250",
    )
    yield Flow(
        "metrics-server-to-kubelets",
        metrics,
        net["nodes"],
        (10250,),
        "metrics-server reads each kubelet's resource metrics",
    )
    yield Flow(
        "metrics-server-to-api-server",
        metrics,
        net["api-server"],
        (HTTPS,),
        "metrics-server lists nodes and delegates authentication and authorization",
    )
    if "cluster-autoscaler" in w:
        autoscaler = w["cluster-autoscaler"]
        yield Flow(
            "cluster-autoscaler-to-api-server",
            autoscaler,
            net["api-server"],
            (HTTPS,),
            "the autoscaler watches pending pods and nodes, and drains nodes it removes",
        )
        yield Flow(
            "cluster-autoscaler-to-aws",
            autoscaler,
            net["internet"],
            (HTTPS,),
            "the Auto Scaling, EC2 and EKS APIs (and STS for IRSA) to size the node groups",
        )


def _log_shipper_flows(w: dict[str, Workload], net: dict[str, Network]) -> Iterator[Flow]:
    """Like the scaling add-ons, Fluent Bit is in kube-system: allowed there by default."""
    if FLUENT_BIT not in w:
        return
    shipper = w[FLUENT_BIT]
    yield Flow(
        "fluent-bit-to-api-server",
        shipper,
        net["api-server"],
        (HTTPS,),
        "the kubernetes filter reads each pod's namespace, labels and container name",
    )
    yield Flow(
        "fluent-bit-to-cloudwatch-logs",
        shipper,
        net["internet"],
        (HTTPS,),
        "CloudWatch Logs (PutLogEvents to the application and audit groups) and STS for IRSA",
    )


def _describe(peer: Peer) -> dict[str, Any]:
    if isinstance(peer, Network):
        return {"network": peer.key, "cidr": peer.cidr, "except": list(peer.excepted)}
    return {
        "workload": peer.key,
        "namespace": peer.namespace,
        "labels": peer.label_map,
        "identity": peer.principal,
        "source": peer.source,
    }


def flow_table(cfg: PlatformConfig) -> list[dict[str, Any]]:
    """The table as JSON-ready rows: what `agentops plan` writes next to plan.json."""
    return [
        {
            "name": f.name,
            "from": _describe(f.source),
            "to": _describe(f.destination),
            "protocol": f.protocol.value,
            "ports": list(f.ports),
            "methods": list(f.methods),
            "paths": list(f.paths),
            **(
                {
                    "operations": [
                        {"methods": list(o.methods), "paths": list(o.paths)} for o in f.operations
                    ]
                }
                if f.operations
                else {}
            ),
            "callerJwt": f.caller_jwt,
            "hosts": list(f.hosts),
            "meshAuthorized": bool(f.mesh_ports),
            "why": f.why,
        }
        for f in flows(cfg)
    ]
