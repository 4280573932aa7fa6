"""Every series an alert reads is produced by something its stack deploys.

Per stack: the metric names of every catalogue alert (parsed with promql-parser) must map to a
producer the stack's plan really renders — the runtime series to the service whose Prometheus
registry declares them (the services' own metric classes, instantiated) with its Deployment
and the runtime ServiceMonitor; `redis_up` to the Redis chart's exporter or, for ElastiCache,
the pinned redis_exporter release aimed at it over TLS with its token from a Secret;
`vault_core_unsealed` to the ServiceMonitor on Vault's telemetry endpoint with Vault's telemetry
stanza and, where the program configures Vault, a token whose only policy reads sys/metrics.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from contracts import versions
from contracts.config import load_from_mapping
from contracts.telemetry import metrics as m
from contracts.telemetry.alerts import build_catalogue
from infra.plan.document import REDACTED, Plan, PlanResource
from infra.platform.alert_thresholds import alert_thresholds
from infra.platform.metric_producers import (
    REDIS_EXPORTER_RELEASE,
    VAULT_METRICS_PATH,
    VAULT_METRICS_POLICY_HCL,
    VAULT_METRICS_SECRET,
)
from infra.platform.names import COST_ENGINE, MANAGER, pool_workload
from runtime.cost.metrics import CostMetrics
from runtime.manager.metrics import ManagerMetrics
from runtime.service.app import ShellMetrics
from runtime.worker.metrics import WorkerMetrics
from tests.infra.alert_facts import metric_names, release
from tests.stacks import STACKS, stack_values

WORKERS = "agent pools"


def _declared(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


def runtime_series() -> dict[str, str]:
    """Series name → the service whose registry declares it."""
    cost = CollectorRegistry()
    CostMetrics(cost)
    shell = CollectorRegistry()
    ShellMetrics(shell)  # every HTTP service's shell: the manager's is enough to produce them
    found: dict[str, str] = {}
    for service, registry in (
        (MANAGER, ManagerMetrics().registry),
        (MANAGER, shell),
        (COST_ENGINE, cost),
        (WORKERS, WorkerMetrics().registry),
    ):
        for name in _declared(registry):
            found.setdefault(name, service)
    return found


def _objects(plan: Plan, kind: str) -> dict[str, PlanResource]:
    return {
        r.inputs["metadata"]["name"]: r
        for r in plan.resources
        if r.is_kubernetes_object and r.inputs["kind"] == kind
    }


def _chart(key: str) -> str:
    chart = versions.CHARTS[key]
    return f"{chart.name} {chart.version}"


def _runtime_producers(plan: Plan, stack: str) -> dict[str, str]:
    monitors = _objects(plan, "ServiceMonitor")
    if "agentops-runtime" not in monitors:
        return {}
    deployments = set(_objects(plan, "Deployment"))
    pools = {pool_workload(p["name"]) for p in stack_values(stack)["agents"]["pools"]}
    running = {
        MANAGER: MANAGER in deployments,
        COST_ENGINE: COST_ENGINE in deployments,
        WORKERS: bool(pools) and pools <= deployments,
    }
    return {
        series: f"{service} Deployment, ServiceMonitor agentops-runtime"
        for series, service in runtime_series().items()
        if running[service]
    }


def _redis_producer(plan: Plan) -> str | None:
    in_cluster = release(plan, "redis")
    if in_cluster is not None:
        metrics = in_cluster.inputs["values"]["metrics"]
        if metrics["enabled"] and metrics["serviceMonitor"]["enabled"]:
            return f"{_chart('redis')} metrics exporter + its ServiceMonitor"
        return None
    exporter = release(plan, REDIS_EXPORTER_RELEASE)
    if exporter is None:
        return None
    values: dict[str, Any] = exporter.inputs["values"]
    assert exporter.inputs["version"] == versions.CHARTS["prometheus-redis-exporter"].version
    assert values["redisAddress"].startswith("rediss://"), "ElastiCache speaks TLS only"
    assert ".cache.amazonaws.com:" in values["redisAddress"]
    auth = values["auth"]
    assert auth["enabled"] and "redisPassword" not in auth, "token only from a Secret"
    secret = _objects(plan, "Secret")[auth["secret"]["name"]]
    assert secret.inputs["stringData"] == REDACTED
    if not values["serviceMonitor"]["enabled"]:
        return None
    return f"{_chart('prometheus-redis-exporter')} → ElastiCache (rediss, token from Secret)"


def _vault_producer(plan: Plan, stack: str) -> str | None:
    monitor = _objects(plan, "ServiceMonitor").get("vault-telemetry")
    vault = release(plan, "vault")
    if monitor is None or vault is None:
        return None
    (endpoint,) = monitor.inputs["spec"]["endpoints"]
    assert endpoint["path"] == VAULT_METRICS_PATH
    assert endpoint["params"] == {"format": ["prometheus"]}
    assert endpoint["scheme"] == "https"
    # In the mesh: mTLS with Prometheus' Istio certificate to the servers' sidecars (plaintext
    # listener behind them); outside it, Vault's own TLS verified with its CA.
    meshed = load_from_mapping(stack_values(stack)).mesh.enabled
    assert ("certFile" in endpoint["tlsConfig"]) is meshed
    assert endpoint["port"] == ("http" if meshed else "https")
    hcl = vault.inputs["values"]["server"]["ha"]["raft"]["config"]
    assert "telemetry {" in hcl and "prometheus_retention_time" in hcl, hcl
    if not stack_values(stack)["vault"].get("configure", False):
        assert "unauthenticated_metrics_access = true" in hcl
        return f"{_chart('vault')} telemetry, scraped over TLS (unconfigured Vault: no token)"
    assert "unauthenticated_metrics_access" not in hcl
    credentials = endpoint["authorization"]["credentials"]
    assert credentials == {"name": VAULT_METRICS_SECRET, "key": "token"}
    assert _objects(plan, "Secret")[VAULT_METRICS_SECRET].inputs["stringData"] == REDACTED
    (policy,) = [
        r
        for r in plan.resources
        if r.type == "vault:index/policy:Policy" and r.inputs["policy"] == VAULT_METRICS_POLICY_HCL
    ]
    (token,) = [r for r in plan.resources if r.type == "vault:index/token:Token"]
    assert token.inputs["policies"] == [policy.inputs["name"]]
    assert token.inputs["noDefaultPolicy"] is True
    return f"{_chart('vault')} telemetry, scraped over TLS with a sys/metrics-only token"


def producers(plan: Plan, stack: str) -> dict[str, str]:
    found = _runtime_producers(plan, stack)
    for series, producer in (
        (m.REDIS_UP, _redis_producer(plan)),
        (m.VAULT_UNSEALED, _vault_producer(plan, stack)),
    ):
        if producer is not None:
            found[series] = producer
    return found


def test_runtime_registries_declare_the_contract() -> None:
    series = runtime_series()
    assert {m.TASKS, m.QUEUE_LENGTH, m.AGENT_LAST_HEARTBEAT} <= {
        s for s, svc in series.items() if svc == MANAGER
    }
    assert {m.TOKENS, m.SPEND_USD, m.BUDGET_USD} <= {
        s for s, svc in series.items() if svc == COST_ENGINE
    }


@pytest.mark.parametrize("stack", STACKS)
def test_every_alert_reads_series_its_stack_produces(plans: dict[str, Plan], stack: str) -> None:
    cfg = load_from_mapping(stack_values(stack))
    found = producers(plans[stack], stack)
    missing = {
        rule.name: sorted(metric_names(rule.expr) - found.keys())
        for group in build_catalogue(alert_thresholds(cfg))
        for rule in group.rules
        if metric_names(rule.expr) - found.keys()
    }
    assert not missing, f"{stack}: alerts reading series nothing deploys: {missing}"
