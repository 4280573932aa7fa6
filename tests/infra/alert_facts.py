"""Facts the tests derive from the deployed alerting: what each alert's PromQL reads and which
labels its result carries (promql-parser), and where Alertmanager sends it (the real `amtool
config routes test` over the config the plan rendered)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser as promql
import yaml

from contracts.telemetry import metrics as m
from contracts.telemetry.alerts import AlertRule
from infra.plan.document import REDACTED, Plan, PlanResource

__all__ = [
    "PEOPLE",
    "RoutedAlert",
    "alertmanager_file",
    "matches",
    "metric_names",
    "release",
    "result_labels",
    "route",
    "sample_labels",
    "tool",
]

# Receiver integrations that reach a person; a webhook into the agent manager does not.
PEOPLE = frozenset({"pagerduty_configs", "slack_configs", "email_configs", "opsgenie_configs"})
# The plan redacts secrets at the leaves; amtool needs syntactically valid stand-ins.
# Endpoints point at a closed port on 127.0.0.1, so a real Alertmanager never calls out.
_STAND_INS = {
    "routing_key": "0123456789abcdef0123456789abcdef",
    "api_url": "http://127.0.0.1:9/slack",
    "auth_password": "stand-in",
}
_LOCAL_ENDPOINTS = {
    "pagerduty_configs": {"url": "http://127.0.0.1:9/pagerduty"},
    "email_configs": {"smarthost": "127.0.0.1:9"},
}
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: run scripts/ensure-apt"
    return path


def release(plan: Plan, name: str) -> PlanResource | None:
    found = [
        r
        for r in plan.resources
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("name") == name
    ]
    return found[0] if found else None


def _unredact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _unredact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_unredact(v, key) for v in value]
    if value == REDACTED:
        return _STAND_INS[key]
    return value


def alertmanager_file(plan: Plan, directory: Path) -> tuple[Path, dict[str, Any]]:
    """The Alertmanager config the plan deploys (kube-prometheus-stack values), written with
    stand-ins where the plan shows `[secret]`."""
    stack = release(plan, "kube-prometheus-stack")
    assert stack is not None, "the plan deploys no kube-prometheus-stack"
    config = _unredact(stack.inputs["values"]["alertmanager"]["config"])
    for receiver in config["receivers"]:
        for kind, endpoint in _LOCAL_ENDPOINTS.items():
            for integration in receiver.get(kind, []):
                integration.update(endpoint)
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path, config


# --- PromQL ---------------------------------------------------------------------------------


def _selectors(node: Any) -> list[Any]:
    if isinstance(node, promql.VectorSelector):
        return [node]
    if isinstance(node, promql.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, promql.BinaryExpr):
        return _selectors(node.lhs) + _selectors(node.rhs)
    if isinstance(node, promql.Call):
        return [s for arg in node.args for s in _selectors(arg)]
    if isinstance(node, promql.AggregateExpr):
        return _selectors(node.expr)
    if isinstance(node, promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
        return _selectors(node.expr)
    return []


def metric_names(expr: str) -> frozenset[str]:
    """Every series name the expression reads; `x_bucket` of a contract histogram reads `x`."""
    names = set()
    for selector in _selectors(promql.parse(expr)):
        name = selector.name or next(
            (mt.value for mt in selector.matchers.matchers if mt.name == "__name__"), None
        )
        assert name, f"selector without a metric name in {expr!r}"
        for suffix in _HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in m.HISTOGRAMS:
                name = name.removesuffix(suffix)
        names.add(name)
    return frozenset(names)


def _labels(node: Any) -> frozenset[str] | None:
    """The label names of the expression's result; None where any label may pass through."""
    if isinstance(node, promql.NumberLiteral):
        return frozenset()
    if isinstance(node, promql.VectorSelector | promql.MatrixSelector):
        return None
    if isinstance(node, promql.ParenExpr | promql.UnaryExpr):
        return _labels(node.expr)
    if isinstance(node, promql.AggregateExpr):
        modifier = node.modifier
        if modifier is None:
            return frozenset()
        if str(modifier.type).endswith("By"):
            return frozenset(modifier.labels)
        return None
    if isinstance(node, promql.Call):
        name = node.func.name
        if name == "absent":
            (selector,) = _selectors(node.args[0])
            return frozenset(
                mt.name for mt in selector.matchers.matchers if str(mt.op).endswith("Equal")
            )
        if name == "time":
            return frozenset()
        if name == "histogram_quantile":
            inner = _labels(node.args[1])
            return None if inner is None else inner - {"le"}
        vectors = [_labels(a) for a in node.args if not isinstance(a, promql.NumberLiteral)]
        return vectors[0] if vectors else frozenset()
    if isinstance(node, promql.BinaryExpr):
        left, right = _labels(node.lhs), _labels(node.rhs)
        if str(node.op) == "or":
            return None if left is None or right is None else left | right
        scalar_left = isinstance(node.lhs, promql.NumberLiteral) or (
            isinstance(node.lhs, promql.Call) and node.lhs.func.name == "time"
        )
        return right if scalar_left else left
    return None


def result_labels(rule: AlertRule) -> frozenset[str] | None:
    """Labels a firing instance of the rule carries: its result's, its own and `severity`."""
    found = _labels(promql.parse(rule.expr))
    if found is None:
        return None
    return found | set(rule.labels) | {"alertname", "severity"}


# --- Alertmanager ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutedAlert:
    alert: str
    severity: str
    labels: Mapping[str, str]
    receivers: tuple[str, ...]


def sample_labels(rule: AlertRule) -> dict[str, str]:
    """One plausible label set of a firing instance of the rule."""
    names = result_labels(rule) or frozenset()
    sample = {name: f"sample-{name}" for name in sorted(names)}
    return {**sample, **dict(rule.labels), "alertname": rule.name, "severity": rule.severity}


def route(config_file: Path, rule: AlertRule) -> RoutedAlert:
    """Where Alertmanager sends the rule's alert, as the real amtool says."""
    labels = sample_labels(rule)
    proc = subprocess.run(
        [
            tool("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={config_file}",
            *(f"{k}={v}" for k, v in labels.items()),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    receivers = tuple(r.strip() for r in proc.stdout.strip().split(",") if r.strip())
    return RoutedAlert(rule.name, rule.severity, labels, receivers)


_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')


def matches(matchers: list[str], labels: Mapping[str, str]) -> bool:
    """Alertmanager's matcher semantics for the `name op "value"` form the config uses."""
    for text in matchers:
        found = _MATCHER.match(text)
        assert found, f"unsupported matcher {text!r}"
        name, op, value = found.groups()
        actual = labels.get(name, "")
        hit = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not hit:
            return False
    return True
