"""The monitoring layer: the catalogue as deployed, routes checked by amtool, scrape wiring."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts import versions
from contracts.config import load_from_mapping
from contracts.telemetry.alerts import EMERGENCY_ALERT, build_catalogue, render_rule_groups
from infra.plan.document import REDACTED, Plan, PlanResource
from infra.platform.alert_thresholds import alert_thresholds
from infra.platform.alertmanager import alertmanager_config
from tests.stacks import stack_values

AWS = ("staging", "prod")


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: run scripts/ensure-apt"
    return path


def _one(plan: Plan, kind: str, name: str) -> PlanResource:
    (found,) = [
        r
        for r in plan.resources
        if r.is_kubernetes_object
        and r.inputs["kind"] == kind
        and r.inputs["metadata"]["name"] == name
    ]
    return found


def _release(plan: Plan, release: str) -> PlanResource:
    (found,) = [
        r
        for r in plan.resources
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("name") == release
    ]
    return found


@pytest.mark.parametrize("stack", AWS)
def test_deployed_rules_are_the_catalogue_and_pass_promtool(
    plans: dict[str, Plan], stack: str, tmp_path: Path
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    rule = _one(plans[stack], "PrometheusRule", "agentops-alerts")
    assert rule.inputs["spec"] == render_rule_groups(build_catalogue(alert_thresholds(cfg)))
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(yaml.safe_dump(rule.inputs["spec"]))
    proc = subprocess.run(
        [_tool("promtool"), "check", "rules", str(rule_file)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exprs = " ".join(r["expr"] for g in rule.inputs["spec"]["groups"] for r in g["rules"])
    assert str(cfg.monitoring.hourly_token_budget) in exprs


@pytest.mark.parametrize("stack", AWS)
def test_alertmanager_config_passes_amtool(stack: str, tmp_path: Path) -> None:
    cfg = load_from_mapping(stack_values(stack))
    stand_ins = {
        "slackWebhookUrl": "https://hooks.slack.com/services/T000/B000/XXXX",
        "smtpPassword": "stand-in",
        "pagerdutyRoutingKey": "0123456789abcdef0123456789abcdef",
    }
    config = alertmanager_config(cfg, stand_ins)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [_tool("amtool"), "check-config", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = {r["name"] for r in config["receivers"]}
    routes = {r["receiver"]: r for r in config["route"]["routes"]}
    assert routes["agent-manager"]["matchers"] == [f'alertname="{EMERGENCY_ALERT}"']
    assert "null" not in names
    if stack == "prod":
        assert {"pagerduty-critical", "slack", "email"} <= names
        assert routes["pagerduty-critical"]["matchers"] == ['severity="critical"']
        assert routes["email"]["matchers"] == ['severity=~"warning|critical"']
    else:
        assert "pagerduty-critical" not in names
    assert routes["slack"]["matchers"] == ['severity=~"warning|critical"']


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{path}.{k}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, f"{path}[{i}]"))
        return out
    return {path: value}


def test_receiver_secrets_are_redacted_in_the_plan(plans: dict[str, Plan]) -> None:
    values = _release(plans["prod"], "kube-prometheus-stack").inputs["values"]
    leaves = _leaves(values["alertmanager"]["config"])
    redacted = sorted(k for k, v in leaves.items() if v == REDACTED)
    assert redacted == [
        ".receivers[1].pagerduty_configs[0].routing_key",
        ".receivers[2].slack_configs[0].api_url",
        ".receivers[3].email_configs[0].auth_password",
    ]
    secrets = [r for r in plans["prod"].resources if r.type == "kubernetes:core/v1:Secret"]
    assert secrets
    assert all(s.inputs["stringData"] == REDACTED for s in secrets)


@pytest.mark.parametrize("stack", AWS)
def test_charts_are_pinned_from_the_version_table(plans: dict[str, Plan], stack: str) -> None:
    releases = [r for r in plans[stack].resources if r.type == "kubernetes:helm.sh/v3:Release"]
    pinned = {(c.repository, c.name): c.version for c in versions.CHARTS.values()}
    minor = versions.for_minor(stack_values(stack)["cluster"]["kubernetesVersion"])
    istio = minor.istio
    pinned |= {(versions.ISTIO_CHARTS, c): istio for c in ("base", "cni", "istiod", "gateway")}
    pinned[(versions.CLUSTER_AUTOSCALER_CHARTS, "cluster-autoscaler")] = (
        minor.cluster_autoscaler_chart
    )
    assert releases
    for release in releases:
        key = (release.inputs["repositoryOpts"]["repo"], release.inputs["chart"])
        assert release.inputs["version"] == pinned[key], key


@pytest.mark.parametrize("stack", AWS)
def test_runtime_is_scraped_and_queue_metric_reaches_the_hpa(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    monitor = _one(plan, "ServiceMonitor", "agentops-runtime").inputs["spec"]
    selector = monitor["selector"]["matchLabels"]
    services = [
        r
        for r in plan.resources
        if r.is_kubernetes_object
        and r.inputs["kind"] == "Service"
        and r.inputs["spec"].get("type") != "ExternalName"  # RDS: nothing of ours to scrape
    ]
    assert services
    for svc in services:
        meta = svc.inputs["metadata"]
        assert meta["namespace"] in monitor["namespaceSelector"]["matchNames"]
        assert selector.items() <= meta["labels"].items()
        assert {"name": "http"}.items() <= svc.inputs["spec"]["ports"][0].items()
    adapter = _release(plan, "prometheus-adapter").inputs["values"]["rules"]["external"]
    hpa_metrics = {
        m["external"]["metric"]["name"]
        for r in plan.resources
        if r.is_kubernetes_object and r.inputs["kind"] == "HorizontalPodAutoscaler"
        for m in r.inputs["spec"]["metrics"]
        if m["type"] == "External"
    }
    assert hpa_metrics == {rule["name"]["as"] for rule in adapter}


def test_dashboards_are_provisioned_from_code(plans: dict[str, Plan]) -> None:
    import json

    from infra.platform.dashboards import build_dashboards

    maps = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in plans["prod"].resources
        if r.is_kubernetes_object
        and r.inputs["kind"] == "ConfigMap"
        and r.inputs["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    }
    dashboards = build_dashboards()
    assert set(maps) == {f"dashboard-{uid}" for uid in dashboards}
    for uid, model in dashboards.items():
        assert json.loads(maps[f"dashboard-{uid}"]["data"][f"{uid}.json"]) == model
