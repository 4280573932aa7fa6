"""What produces the series the alert catalogue reads beyond the runtime's own: Redis' exporter
and Vault's telemetry endpoint, as pure values the monitoring and Vault layers render.

- Redis in the cluster: the bitnami chart's exporter container (`metrics.enabled`) with its
  ServiceMonitor. ElastiCache runs no exporter of its own, so the monitoring layer deploys
  redis_exporter (chart `prometheus-redis-exporter`, pinned in `contracts.versions.CHARTS`, which
  pins the image) pointed at the primary endpoint over TLS (`rediss://`), with the auth token
  from a Kubernetes Secret (a Pulumi secret; never in values).
- MCP tool servers: a ServiceMonitor each, selecting exactly that server's Service in the agents
  namespace, on its named port, at its `metricsPath` from config (the fields that also make its
  Service and its `prometheus-scrapes-mcp-<server>` flow); none for a server without metrics.
- Vault: Prometheus scrapes `/v1/sys/metrics?format=prometheus` on every server over TLS (the
  Vault CA). Where the program configures Vault, it presents a token whose only policy reads
  `sys/metrics` (Secret in the monitoring namespace); an unconfigured Vault (the local stack,
  or before the second `pulumi up`) serves metrics without a token on its listener instead.
"""

from __future__ import annotations

from typing import Any, Final

from contracts import ports
from contracts.config import PlatformConfig
from infra.platform.names import APP_LABEL, TOOL_SERVER_LABEL, Namespace, tool_server_workload
from infra.platform.runtime_secrets import CA_CONFIGMAP, VAULT_RELEASE
from infra.platform.workloads import PORT_NAME

__all__ = [
    "ISTIO_CERTS",
    "PROMETHEUS_POD",
    "REDIS_EXPORTER_AUTH_SECRET",
    "REDIS_EXPORTER_PORT",
    "REDIS_EXPORTER_RELEASE",
    "SCRAPE_INTERVAL",
    "VAULT_METRICS_PATH",
    "VAULT_METRICS_POLICY",
    "VAULT_METRICS_POLICY_HCL",
    "VAULT_METRICS_SECRET",
    "VAULT_TELEMETRY_HCL",
    "istio_scrape_tls",
    "redis_exporter_values",
    "tool_server_monitors",
    "vault_service_monitor",
    "workload_scrape_endpoint",
]

# How often Prometheus scrapes the platform's own workloads (runtime and tool servers).
SCRAPE_INTERVAL: Final = "15s"
PROMETHEUS_POD: Final = {"app.kubernetes.io/name": "prometheus"}
# Where Prometheus' sidecar writes its Istio workload certificate (monitoring layer): it scrapes
# meshed pods with it over the mesh's mTLS, its own traffic bypassing the sidecar.
ISTIO_CERTS: Final = "/etc/prom-certs"
REDIS_EXPORTER_RELEASE: Final = "redis-exporter"
REDIS_EXPORTER_PORT: Final = 9121
REDIS_EXPORTER_AUTH_SECRET: Final = "redis-exporter-auth"  # noqa: S105 - a Secret's name
VAULT_METRICS_SECRET: Final = "vault-metrics-token"  # noqa: S105 - a Secret's name
VAULT_METRICS_POLICY: Final = "prometheus-metrics"
VAULT_METRICS_PATH: Final = "/v1/sys/metrics"
VAULT_METRICS_POLICY_HCL: Final = 'path "sys/metrics" {\n  capabilities = ["read"]\n}\n'
# Vault's server telemetry: keep Prometheus-format metrics for 30 s, no host in their names.
VAULT_TELEMETRY_HCL: Final = (
    'telemetry {\n  prometheus_retention_time = "30s"\n  disable_hostname = true\n}\n'
)


def redis_exporter_values(primary_endpoint: str) -> dict[str, Any]:
    """Values of the ElastiCache exporter release: TLS address, token from a Secret, the same
    hardening as the platform's own workloads, and a ServiceMonitor Prometheus selects."""
    return {
        "fullnameOverride": REDIS_EXPORTER_RELEASE,
        "redisAddress": f"rediss://{primary_endpoint}:{ports.REDIS}",
        "auth": {
            "enabled": True,
            "secret": {"name": REDIS_EXPORTER_AUTH_SECRET, "key": "password"},
        },
        "service": {"port": REDIS_EXPORTER_PORT},
        "serviceMonitor": {"enabled": True, "interval": "15s"},
        # Outside the mesh: it speaks TLS to ElastiCache itself, and Prometheus scrapes it
        # without the mesh's certificates.
        "podAnnotations": {"sidecar.istio.io/inject": "false"},
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": 59000,
            "runAsGroup": 59000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {
            "requests": {"cpu": "25m", "memory": "32Mi", "ephemeral-storage": "16Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
        },
    }


def istio_scrape_tls() -> dict[str, Any]:
    """An endpoint's scheme and TLS for a target in the mesh: Prometheus' Istio certificate."""
    return {
        "scheme": "https",
        "tlsConfig": {
            "caFile": f"{ISTIO_CERTS}/root-cert.pem",
            "certFile": f"{ISTIO_CERTS}/cert-chain.pem",
            "keyFile": f"{ISTIO_CERTS}/key.pem",
            # Istio certificates name SPIFFE identities, not DNS names.
            "insecureSkipVerify": True,
        },
    }


def vault_service_monitor(cfg: PlatformConfig) -> dict[str, Any]:
    """Spec of the ServiceMonitor scraping every Vault server's telemetry: over Vault's TLS
    (its CA), or in the mesh over mTLS to the servers' sidecars (the chart names the port
    `http` when its listener is plaintext)."""
    ns = Namespace.VAULT.value
    endpoint: dict[str, Any] = {
        "port": "https",
        "scheme": "https",
        "path": VAULT_METRICS_PATH,
        "params": {"format": ["prometheus"]},
        "interval": "30s",
        "tlsConfig": {
            "ca": {"configMap": {"name": CA_CONFIGMAP, "key": "ca.crt"}},
            "serverName": f"{VAULT_RELEASE}.{ns}.svc",
        },
    }
    if cfg.mesh.enabled:
        endpoint.update({"port": "http", **istio_scrape_tls()})
    if cfg.vault.configure:
        endpoint["authorization"] = {
            "type": "Bearer",
            "credentials": {"name": VAULT_METRICS_SECRET, "key": "token"},
        }
    return {
        "namespaceSelector": {"matchNames": [ns]},
        # The chart's headless Service: one endpoint per server, sealed or not.
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": VAULT_RELEASE,
                "app.kubernetes.io/instance": VAULT_RELEASE,
                "vault-internal": "true",
            }
        },
        "endpoints": [endpoint],
    }


def tool_server_monitors(cfg: PlatformConfig) -> dict[str, dict[str, Any]]:
    """ServiceMonitor spec per tool server with metrics, keyed by the server's workload name."""
    return {
        tool_server_workload(s.name): _tool_server_monitor(cfg, s.name, s.metrics_path)
        for s in cfg.agents.tool_servers
        if s.metrics_path is not None
    }


def workload_scrape_endpoint(cfg: PlatformConfig, path: str) -> dict[str, Any]:
    """A ServiceMonitor endpoint on one of our workloads' Services: its named port, `path`,
    over the mesh's mutual TLS when the mesh is on."""
    endpoint: dict[str, Any] = {"port": PORT_NAME, "path": path, "interval": SCRAPE_INTERVAL}
    if cfg.mesh.enabled:
        endpoint.update(istio_scrape_tls())
    return endpoint


def _tool_server_monitor(cfg: PlatformConfig, server: str, metrics_path: str) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchNames": [Namespace.AGENTS.value]},
        "selector": {
            "matchLabels": {
                APP_LABEL: tool_server_workload(server),
                TOOL_SERVER_LABEL: server,
            }
        },
        "endpoints": [workload_scrape_endpoint(cfg, metrics_path)],
    }
