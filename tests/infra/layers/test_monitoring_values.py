"""The monitoring layer's chart values are pure functions: called directly, without Pulumi's
engine. The adapter's queries run in Prometheus' own PromQL engine (`promtool test rules`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from contracts.config import load_from_mapping
from contracts.telemetry import metrics
from infra.layers.monitoring import (
    DASHBOARD_LABEL,
    GRAFANA_ADMIN_SECRET,
    OTLP_GRPC,
    PROMETHEUS_URL,
    adapter_values,
    otel_collector_values,
    prometheus_spec,
    runtime_service_monitor,
    stack_values,
)
from infra.platform.alertmanager import MANAGER_WEBHOOK_SECRET, alertmanager_config
from infra.platform.names import Namespace
from infra.platform.workloads import runtime_workloads
from tests.stacks import STACKS
from tests.stacks import stack_values as stack_file

# The secret config keys Alertmanager's receivers read (stand-ins: the values are not checked).
SECRET_KEYS = ("slackWebhookUrl", "smtpPassword", "pagerdutyRoutingKey")


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: run scripts/ensure-apt"
    return path


def _matchers(selector: dict[str, str]) -> str:
    # What the adapter puts for <<.LabelMatchers>>: the HPA's metric selector.
    return ",".join(f'{key}="{value}"' for key, value in sorted(selector.items()))


@pytest.mark.parametrize("stack", STACKS)
def test_each_pools_hpa_reads_the_longest_queue_its_managers_report(
    stack: str, tmp_path: Path
) -> None:
    cfg = load_from_mapping(stack_file(stack))
    (rule,) = adapter_values()["rules"]["external"]
    scaled = [w.autoscaling for w in runtime_workloads(cfg) if w.autoscaling is not None]
    assert scaled, "every stack scales its pools on the queue"
    series: list[dict[str, str]] = [
        # A series without the pool's label is not a queue the adapter offers.
        {"series": f'{metrics.QUEUE_LENGTH}{{instance="stray"}}', "values": "99 99"}
    ]
    tests: list[dict[str, Any]] = []
    for n, auto in enumerate(scaled, start=1):
        assert auto.queue_metric == rule["name"]["as"]
        labels = _matchers(auto.queue_selector)
        # Two manager replicas report the same queue, one a scrape behind.
        series += [
            {"series": f'{auto.queue_metric}{{{labels},instance="a"}}', "values": f"{n} {n}"},
            {"series": f'{auto.queue_metric}{{{labels},instance="b"}}', "values": f"{n} {10 * n}"},
        ]
        query = (
            rule["metricsQuery"]
            .replace("<<.Series>>", auto.queue_metric)
            .replace("<<.LabelMatchers>>", labels)
        )
        tests.append(
            {
                "expr": query,
                "eval_time": "1m",
                "exp_samples": [{"labels": f"{{{labels}}}", "value": 10 * n}],
            }
        )
    # The series the adapter offers as the external metric: every pool's, nothing else.
    offered = [
        {
            "labels": f'{metrics.QUEUE_LENGTH}{{{_matchers(a.queue_selector)},instance="{i}"}}',
            "value": n,
        }
        for n, a in enumerate(scaled, start=1)
        for i in ("a", "b")
    ]
    tests.append({"expr": rule["seriesQuery"], "eval_time": "0m", "exp_samples": offered})
    unit = tmp_path / "adapter_test.yaml"
    unit.write_text(
        yaml.safe_dump(
            {
                "rule_files": [],
                "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
            }
        )
    )
    proc = subprocess.run(
        [_promtool(), "test", "rules", str(unit)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_adapter_asks_the_stacks_prometheus() -> None:
    prometheus = adapter_values()["prometheus"]
    assert f"{prometheus['url']}:{prometheus['port']}" == PROMETHEUS_URL


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_scrapes_the_mesh_with_the_certificates_its_sidecar_writes(stack: str) -> None:
    cfg = load_from_mapping(stack_file(stack))
    spec = prometheus_spec(cfg)
    (endpoint,) = runtime_service_monitor(cfg)["endpoints"]
    if not cfg.mesh.enabled:
        assert "scheme" not in endpoint and "tlsConfig" not in endpoint
        assert not {"podMetadata", "volumes", "volumeMounts"} & spec.keys()
        return
    annotations = spec["podMetadata"]["annotations"]
    written_to = json.loads(annotations["proxy.istio.io/config"])["proxyMetadata"]["OUTPUT_CERTS"]
    (sidecar_mount,) = json.loads(annotations["sidecar.istio.io/userVolumeMount"])
    assert sidecar_mount["mountPath"] == written_to
    (volume,) = spec["volumes"]
    assert volume["name"] == sidecar_mount["name"]
    (prometheus_mount,) = [m for m in spec["volumeMounts"] if m["name"] == volume["name"]]
    certs = PurePosixPath(prometheus_mount["mountPath"])
    assert endpoint["scheme"] == "https"
    files = {k: v for k, v in endpoint["tlsConfig"].items() if k.endswith("File")}
    assert set(files) == {"caFile", "certFile", "keyFile"}
    assert all(PurePosixPath(path).parent == certs for path in files.values()), files


@pytest.mark.parametrize("stack", STACKS)
def test_the_runtime_monitor_selects_the_namespaces_the_runtime_runs_in(stack: str) -> None:
    cfg = load_from_mapping(stack_file(stack))
    selected = set(runtime_service_monitor(cfg)["namespaceSelector"]["matchNames"])
    assert {w.namespace.value for w in runtime_workloads(cfg)} == selected


@pytest.mark.parametrize("stack", STACKS)
def test_stack_values_carry_the_stacks_prometheus_and_grafana(stack: str) -> None:
    cfg = load_from_mapping(stack_file(stack))
    stand_ins = {key: f"stand-in-{key}" for key in SECRET_KEYS}
    values = stack_values(cfg, stand_ins)
    assert values["prometheus"]["prometheusSpec"] == prometheus_spec(cfg)
    alertmanager = values["alertmanager"]
    assert alertmanager["config"] == alertmanager_config(cfg, stand_ins)
    # The operator mounts each listed Secret at /etc/alertmanager/secrets/<name>/: the manager's
    # receiver reads its bearer token from the Secret the layer creates.
    (manager,) = [r for r in alertmanager["config"]["receivers"] if r["name"] == "agent-manager"]
    token_files = {
        w["http_config"]["authorization"]["credentials_file"] for w in manager["webhook_configs"]
    }
    assert alertmanager["alertmanagerSpec"]["secrets"] == [MANAGER_WEBHOOK_SECRET]
    assert {str(PurePosixPath(f).parent) for f in token_files} == {
        f"/etc/alertmanager/secrets/{MANAGER_WEBHOOK_SECRET}"
    }
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["retention"] == cfg.monitoring.retention
    assert spec["externalLabels"] == {"environment": cfg.environment.value}
    grafana = values["grafana"]
    assert grafana["enabled"] is cfg.monitoring.grafana
    if cfg.monitoring.grafana:
        assert grafana["admin"]["existingSecret"] == GRAFANA_ADMIN_SECRET
        assert grafana["sidecar"]["dashboards"]["label"] == DASHBOARD_LABEL
    else:
        assert grafana == {"enabled": False}


def test_the_collector_sends_every_trace_pipeline_to_jaeger_over_otlp() -> None:
    config = otel_collector_values()["config"]
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces"}
    (exporter,) = pipelines["traces"]["exporters"]
    assert config["exporters"][exporter]["endpoint"] == (
        f"jaeger-collector.{Namespace.MONITORING.value}.svc:{OTLP_GRPC}"
    )
