"""Monitoring: kube-prometheus-stack, the alert catalogue, scraping, routes, HPA metrics, traces.

The rules come from `contracts.telemetry.alerts` (one catalogue, also loaded by the local
platform and proven with promtool), the series names from `contracts.telemetry.metrics`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from contracts import endpoints
from contracts.config import PlatformConfig
from contracts.telemetry import metrics
from contracts.telemetry.alerts import build_catalogue, render_rule_groups
from infra.layers.shared import pinned_chart
from infra.platform.alert_thresholds import alert_thresholds
from infra.platform.alertmanager import MANAGER_WEBHOOK_SECRET, alertmanager_config
from infra.platform.dashboards import build_dashboards
from infra.platform.metric_producers import (
    ISTIO_CERTS,
    REDIS_EXPORTER_AUTH_SECRET,
    REDIS_EXPORTER_RELEASE,
    redis_exporter_values,
    tool_server_monitors,
    vault_service_monitor,
    workload_scrape_endpoint,
)
from infra.platform.names import PART_OF, PART_OF_LABEL, TOOL_SERVER_LABEL, Namespace

__all__ = [
    "ALERTMANAGER_SERVICE_ACCOUNT",
    "PROMETHEUS_SERVICE_ACCOUNT",
    "ElastiCacheTarget",
    "Monitoring",
    "MonitoringArgs",
    "adapter_values",
    "otel_collector_values",
    "prometheus_spec",
    "runtime_service_monitor",
    "stack_values",
]

RELEASE = "kube-prometheus-stack"
PROMETHEUS_URL = f"http://{RELEASE}-prometheus.{Namespace.MONITORING.value}.svc:9090"
# Service accounts the chart creates: the mesh authorizes these identities.
PROMETHEUS_SERVICE_ACCOUNT = f"{RELEASE}-prometheus"
ALERTMANAGER_SERVICE_ACCOUNT = f"{RELEASE}-alertmanager"
OTLP_GRPC = 4317
GRAFANA_ADMIN_SECRET = "grafana-admin"  # noqa: S105 - a Secret's name
# Grafana's sidecar loads every ConfigMap with this label as a dashboard.
DASHBOARD_LABEL = "grafana_dashboard"


def _operator_object(
    resource: str, kind: str, name: str, spec: dict[str, Any], opts: pulumi.ResourceOptions
) -> None:
    """A prometheus-operator object (the chart's CRDs) in the monitoring namespace."""
    k8s.apiextensions.CustomResource(
        resource,
        api_version="monitoring.coreos.com/v1",
        kind=kind,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=name, namespace=Namespace.MONITORING.value, labels={PART_OF_LABEL: PART_OF}
        ),
        spec=spec,
        opts=opts,
    )


@dataclass(frozen=True)
class ElastiCacheTarget:
    """What the Redis exporter needs of ElastiCache: its primary endpoint and auth token."""

    primary_endpoint: pulumi.Output[str]
    auth_token: pulumi.Output[str]


@dataclass(frozen=True)
class MonitoringArgs:
    config: PlatformConfig
    provider: k8s.Provider
    secrets: Mapping[str, pulumi.Output[str]]
    depends_on: list[pulumi.Resource]
    # Set where Redis is ElastiCache, which runs no exporter of its own.
    elasticache: ElastiCacheTarget | None = None


class Monitoring(pulumi.ComponentResource):
    prometheus_url: str
    # The bearer token Alertmanager presents on the manager's webhook; the vault layer writes
    # the same value to the KV entry the manager's token file is rendered from.
    manager_webhook_token: pulumi.Output[str]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:Monitoring", name, None, opts)
        cfg = args.config
        inside = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=args.depends_on
        )

        webhook_secret = self._manager_webhook(name, inside)
        if cfg.monitoring.grafana:
            self._grafana(name, inside)
        stack = k8s.helm.v3.Release(
            f"{name}-stack",
            name=RELEASE,
            namespace=Namespace.MONITORING.value,
            values=stack_values(cfg, args.secrets),
            atomic=True,
            timeout=900,
            **pinned_chart("kube-prometheus-stack"),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[*args.depends_on, webhook_secret]
            ),
        )
        after_crds = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[stack])

        _operator_object(
            f"{name}-alert-catalogue",
            "PrometheusRule",
            "agentops-alerts",
            render_rule_groups(build_catalogue(alert_thresholds(cfg))),
            after_crds,
        )
        _operator_object(
            f"{name}-runtime-scrape",
            "ServiceMonitor",
            "agentops-runtime",
            runtime_service_monitor(cfg),
            after_crds,
        )
        self._alert_producers(name, args, after_crds)
        k8s.helm.v3.Release(
            f"{name}-adapter",
            name="prometheus-adapter",
            namespace=Namespace.MONITORING.value,
            values=adapter_values(),
            **pinned_chart("prometheus-adapter"),
            opts=after_crds,
        )
        if cfg.monitoring.tracing:
            self._tracing(name, args, inside)
        self.prometheus_url = PROMETHEUS_URL
        self.register_outputs(
            {"prometheus_url": PROMETHEUS_URL, "manager_webhook_token": self.manager_webhook_token}
        )

    def _manager_webhook(self, name: str, inside: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
        """The token Alertmanager presents to the manager, as a Secret Alertmanager mounts."""
        webhook_token = random.RandomPassword(
            f"{name}-manager-webhook-token",
            length=48,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.manager_webhook_token = pulumi.Output.secret(webhook_token.result)
        return k8s.core.v1.Secret(
            f"{name}-manager-webhook",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=MANAGER_WEBHOOK_SECRET, namespace=Namespace.MONITORING.value
            ),
            string_data={"token": webhook_token.result},
            opts=inside,
        )

    def _grafana(self, name: str, inside: pulumi.ResourceOptions) -> None:
        """Grafana's admin credentials, and a ConfigMap per dashboard its sidecar loads."""
        ns = Namespace.MONITORING.value
        admin = random.RandomPassword(
            f"{name}-grafana-admin",
            length=32,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=GRAFANA_ADMIN_SECRET, namespace=ns),
            string_data={"admin-user": "admin", "admin-password": admin.result},
            opts=inside,
        )
        for uid, model in build_dashboards().items():
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{uid}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"dashboard-{uid}",
                    namespace=ns,
                    labels={DASHBOARD_LABEL: "1", PART_OF_LABEL: PART_OF},
                ),
                data={f"{uid}.json": json.dumps(model, sort_keys=True)},
                opts=inside,
            )

    def _tracing(self, name: str, args: MonitoringArgs, inside: pulumi.ResourceOptions) -> None:
        """Jaeger (all in one) and the OpenTelemetry collector that feeds it."""
        jaeger = k8s.helm.v3.Release(
            f"{name}-jaeger",
            name="jaeger",
            namespace=Namespace.MONITORING.value,
            values={"provisionDataStore": {"cassandra": False}, "allInOne": {"enabled": True}},
            **pinned_chart("jaeger"),
            opts=inside,
        )
        k8s.helm.v3.Release(
            f"{name}-otel-collector",
            name="otel-collector",
            namespace=Namespace.MONITORING.value,
            values=otel_collector_values(),
            **pinned_chart("opentelemetry-collector"),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[jaeger]),
        )

    def _alert_producers(
        self, name: str, args: MonitoringArgs, after_crds: pulumi.ResourceOptions
    ) -> None:
        """Scraping of what the catalogue reads beyond the runtime (see metric_producers)."""
        ns = Namespace.MONITORING.value
        for server, spec in tool_server_monitors(args.config).items():
            _operator_object(f"{name}-{server}-scrape", "ServiceMonitor", server, spec, after_crds)
        if args.config.vault.enabled:
            _operator_object(
                f"{name}-vault-scrape",
                "ServiceMonitor",
                "vault-telemetry",
                vault_service_monitor(args.config),
                after_crds,
            )
        if args.elasticache is not None:
            auth = k8s.core.v1.Secret(
                f"{name}-redis-exporter-auth",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=REDIS_EXPORTER_AUTH_SECRET, namespace=ns),
                string_data={"password": args.elasticache.auth_token},
                opts=pulumi.ResourceOptions(
                    parent=self, provider=args.provider, depends_on=args.depends_on
                ),
            )
            k8s.helm.v3.Release(
                f"{name}-redis-exporter",
                name=REDIS_EXPORTER_RELEASE,
                namespace=ns,
                values=args.elasticache.primary_endpoint.apply(redis_exporter_values),
                atomic=True,
                **pinned_chart("prometheus-redis-exporter"),
                opts=pulumi.ResourceOptions.merge(
                    after_crds, pulumi.ResourceOptions(depends_on=[auth])
                ),
            )


def stack_values(cfg: PlatformConfig, secrets: Mapping[str, Any]) -> dict[str, Any]:
    """The kube-prometheus-stack release's values: Prometheus, Alertmanager's routes, Grafana."""
    values: dict[str, Any] = {
        "fullnameOverride": RELEASE,
        "prometheus": {"prometheusSpec": prometheus_spec(cfg)},
        "alertmanager": {
            "config": alertmanager_config(cfg, secrets),
            "alertmanagerSpec": {"secrets": [MANAGER_WEBHOOK_SECRET]},
        },
        "grafana": {"enabled": cfg.monitoring.grafana},
    }
    if cfg.monitoring.grafana:
        values["grafana"].update(
            {
                "admin": {
                    "existingSecret": GRAFANA_ADMIN_SECRET,
                    "userKey": "admin-user",
                    "passwordKey": "admin-password",
                },
                "sidecar": {"dashboards": {"enabled": True, "label": DASHBOARD_LABEL}},
            }
        )
    return values


def prometheus_spec(cfg: PlatformConfig) -> dict[str, Any]:
    mon = cfg.monitoring
    spec: dict[str, Any] = {
        "retention": mon.retention,
        "externalLabels": {"environment": cfg.environment.value},
        # Select every ServiceMonitor and PrometheusRule, not only the chart's own.
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "storageSpec": {
            "volumeClaimTemplate": {
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": f"{mon.storage_gi}Gi"}},
                }
            }
        },
    }
    if cfg.mesh.enabled:
        spec["podMetadata"] = {
            "annotations": {
                # The sidecar only issues certificates; Prometheus' own traffic bypasses it.
                "traffic.sidecar.istio.io/includeInboundPorts": "",
                "traffic.sidecar.istio.io/includeOutboundIPRanges": "",
                "proxy.istio.io/config": (
                    '{"proxyMetadata":{"OUTPUT_CERTS":"/etc/istio-output-certs"}}'
                ),
                "sidecar.istio.io/userVolumeMount": (
                    '[{"name": "istio-certs", "mountPath": "/etc/istio-output-certs"}]'
                ),
            }
        }
        spec["volumes"] = [{"name": "istio-certs", "emptyDir": {"medium": "Memory"}}]
        spec["volumeMounts"] = [{"name": "istio-certs", "mountPath": ISTIO_CERTS}]
    return spec


def runtime_service_monitor(cfg: PlatformConfig) -> dict[str, Any]:
    """The ServiceMonitor spec scraping the runtime's services; over mutual TLS in the mesh."""
    return {
        "namespaceSelector": {"matchNames": [Namespace.PLATFORM.value, Namespace.AGENTS.value]},
        # Tool servers are ours too, but their metrics path and port are their own (config):
        # each has its own ServiceMonitor (metric_producers.tool_server_monitors).
        "selector": {
            "matchLabels": {PART_OF_LABEL: PART_OF},
            "matchExpressions": [{"key": TOOL_SERVER_LABEL, "operator": "DoesNotExist"}],
        },
        "endpoints": [workload_scrape_endpoint(cfg, endpoints.METRICS)],
    }


def adapter_values() -> dict[str, Any]:
    """prometheus-adapter: each agent pool's HPA reads its queue length as an external metric."""
    return {
        "prometheus": {"url": PROMETHEUS_URL.rsplit(":", 1)[0], "port": 9090},
        "rules": {
            "default": False,
            "external": [
                {
                    "seriesQuery": f'{metrics.QUEUE_LENGTH}{{agent_type!=""}}',
                    "resources": {"namespaced": False},
                    "name": {"as": metrics.QUEUE_LENGTH},
                    "metricsQuery": "max(<<.Series>>{<<.LabelMatchers>>}) by (agent_type)",
                }
            ],
        },
    }


def otel_collector_values() -> dict[str, Any]:
    """The OpenTelemetry collector: OTLP traces in, batched, out to Jaeger's collector."""
    return {
        "mode": "deployment",
        "image": {"repository": "otel/opentelemetry-collector-k8s"},
        "config": {
            "exporters": {
                "otlp/jaeger": {
                    "endpoint": f"jaeger-collector.{Namespace.MONITORING.value}.svc:{OTLP_GRPC}",
                    "tls": {"insecure": True},
                }
            },
            "service": {
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["memory_limiter", "batch"],
                        "exporters": ["otlp/jaeger"],
                    }
                }
            },
        },
    }
