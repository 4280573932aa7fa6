"""The Grafana dashboards: valid JSON models whose every query is real PromQL over the contract.

Queries are parsed by `promql_parser` (a PromQL parser compatible with Prometheus 2.45) after
Grafana's template variables are replaced by what Grafana would substitute, so a typo in an
expression or a metric name that `contracts.telemetry.metrics` does not define fails here rather
than as an empty panel in production.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest

from contracts.telemetry import metrics as m
from contracts.telemetry.alerts import P95_LATENCY_SECONDS, SUCCESS_RATE_WARNING
from infra.platform.dashboards import (
    AGENT_TYPE_VARIABLE,
    DATASOURCE_VARIABLE,
    OVERVIEW_UID,
    build_dashboards,
)

DASHBOARDS = build_dashboards()
PROMETHEUS_REF = {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE}}}"}

# Every series name the contract defines, plus the series Prometheus derives from a histogram.
HISTOGRAMS = m.HISTOGRAMS
CONTRACT = frozenset(getattr(m, name) for name in m.__all__ if name != "HISTOGRAMS")
KNOWN_SERIES = CONTRACT | {
    f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")
}
# The series labelled by agent_type, per the comments in contracts/telemetry/metrics.py: a
# query over one of them must honour the dashboard's agent-type picker.
AGENT_TYPED = frozenset(
    {
        m.TASKS,
        f"{m.TASK_DURATION}_bucket",
        m.QUEUE_LENGTH,
        m.IN_FLIGHT,
        m.LOAD_RATIO,
        m.AGENTS_REGISTERED,
        m.AGENTS_HEALTHY,
        m.AGENT_LAST_HEARTBEAT,
        m.TOKENS,
        m.COST_USD,
        m.SUBMISSIONS,
        m.SUCCESS_RATE,
        m.RETRIES,
        f"{m.TASK_WAIT}_bucket",
        m.TASK_TOKENS,
        m.WORKER_TASKS,
        m.WORKER_IN_FLIGHT,
        f"{m.WORKER_TASK_DURATION}_bucket",
        m.WORKER_TOKENS,
    }
)
# Stands in for the picked agent types; any valid regex does, a distinctive one is findable.
AGENT_TYPE_SENTINEL = "__picked_agent_types__"
METRIC_NAME = re.compile(r"agentops_[a-z_]+")


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The data panels: rows only group them and carry no query."""
    for panel in board["panels"]:
        if panel["type"] != "row":
            yield panel


def exprs(board: dict[str, Any]) -> Iterator[str]:
    for panel in panels(board):
        for target in panel["targets"]:
            yield target["expr"]


def all_exprs() -> list[tuple[str, str]]:
    return [(uid, expr) for uid, board in DASHBOARDS.items() for expr in exprs(board)]


def as_prometheus_sees_it(expr: str) -> str:
    """The expression after Grafana's interpolation, which is what Prometheus parses."""
    text = expr.replace("$__rate_interval", "1m")
    text = text.replace(f"${{{AGENT_TYPE_VARIABLE}}}", AGENT_TYPE_SENTINEL)
    text = text.replace(f"${AGENT_TYPE_VARIABLE}", AGENT_TYPE_SENTINEL)
    assert "$" not in text, f"a template variable the test does not know: {expr}"
    return text


def parse(expr: str) -> promql_parser.Expr:
    return promql_parser.parse(as_prometheus_sees_it(expr))


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(parse(expr), visit)
    return found


def groupings(expr: str) -> set[tuple[str, ...]]:
    """The `by (...)` label lists of the expression's aggregations."""
    found: set[tuple[str, ...]] = set()

    def visit(node: promql_parser.Expr) -> None:
        modifier = node.modifier if isinstance(node, promql_parser.AggregateExpr) else None
        if modifier is not None and modifier.type == promql_parser.AggModifierType.By:
            found.add(tuple(sorted(modifier.labels)))

    promql_parser.walk(parse(expr), visit)
    return found


def panel(title: str, uid: str = OVERVIEW_UID) -> dict[str, Any]:
    matches = [p for p in panels(DASHBOARDS[uid]) if p["title"] == title]
    assert len(matches) == 1, f"{uid}: expected one panel titled {title!r}"
    return matches[0]


def unit(p: dict[str, Any]) -> str:
    result: str = p["fieldConfig"]["defaults"]["unit"]
    return result


# --- the models as a whole ----------------------------------------------------------------


def test_dashboards_are_plain_json() -> None:
    assert DASHBOARDS
    assert json.loads(json.dumps(DASHBOARDS)) == DASHBOARDS


def test_output_is_deterministic() -> None:
    again = build_dashboards()
    assert again == DASHBOARDS
    assert json.dumps(again, sort_keys=True) == json.dumps(DASHBOARDS, sort_keys=True)
    # Each call builds afresh: mutating one result must not leak into the next.
    again[OVERVIEW_UID]["panels"].clear()
    assert build_dashboards() == DASHBOARDS


def test_keys_are_unique_file_safe_uids() -> None:
    for key, board in DASHBOARDS.items():
        assert board["uid"] == key
        # Grafana's own uid rule, and safe as `<uid>.json` and as a ConfigMap key.
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", key), key
    titles = [board["title"] for board in DASHBOARDS.values()]
    assert len(set(titles)) == len(titles)
    assert DASHBOARDS[OVERVIEW_UID]["title"] == "Agent platform overview"


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_panel_ids_are_unique_and_fit_the_grid(uid: str) -> None:
    ids = [p["id"] for p in DASHBOARDS[uid]["panels"]]
    assert len(set(ids)) == len(ids), ids
    assert all(isinstance(i, int) and i > 0 for i in ids), ids
    for p in DASHBOARDS[uid]["panels"]:
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, p["title"]


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_panel_has_title_datasource_and_targets(uid: str) -> None:
    data_panels = list(panels(DASHBOARDS[uid]))
    assert data_panels
    for p in data_panels:
        assert p["title"].strip(), p
        assert p["datasource"] == PROMETHEUS_REF, p["title"]
        assert p["targets"], p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), p["title"]
        for target in p["targets"]:
            assert target["expr"].strip(), p["title"]
            assert target["datasource"] == PROMETHEUS_REF, p["title"]
        assert unit(p), p["title"]


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_variables(uid: str) -> None:
    variables = {v["name"]: v for v in DASHBOARDS[uid]["templating"]["list"]}
    datasource = variables[DATASOURCE_VARIABLE]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    agent_type = variables[AGENT_TYPE_VARIABLE]
    assert agent_type["type"] == "query"
    assert agent_type["datasource"] == PROMETHEUS_REF
    assert agent_type["multi"] and agent_type["includeAll"]
    # `label_values()` is Grafana's, not PromQL: only its series name is checked.
    assert set(METRIC_NAME.findall(agent_type["query"])) <= KNOWN_SERIES


# --- every query --------------------------------------------------------------------------


@pytest.mark.parametrize(("uid", "expr"), all_exprs())
def test_expression_parses(uid: str, expr: str) -> None:
    parse(expr)


@pytest.mark.parametrize(("uid", "expr"), all_exprs())
def test_expression_names_only_contract_series(uid: str, expr: str) -> None:
    # The textual check the contract asks for, independent of the parser...
    assert set(METRIC_NAME.findall(expr)) <= KNOWN_SERIES, expr
    # ...and the parsed one, which also sees names without the agentops_ prefix.
    names = {s.name for s in selectors(expr)}
    assert names and None not in names, expr
    assert names <= KNOWN_SERIES, names - KNOWN_SERIES


@pytest.mark.parametrize(("uid", "expr"), all_exprs())
def test_agent_typed_series_honour_the_picker(uid: str, expr: str) -> None:
    for selector in selectors(expr):
        if selector.name not in AGENT_TYPED:
            continue
        assert any(
            matcher.name == AGENT_TYPE_VARIABLE
            and matcher.op == promql_parser.MatchOp.Re
            and matcher.value == AGENT_TYPE_SENTINEL
            for matcher in selector.matchers.matchers
        ), f"{selector.name} ignores ${AGENT_TYPE_VARIABLE}: {expr}"


def test_parser_is_not_lenient() -> None:
    # Guards the tests above: a broken expression must fail to parse, not slip through.
    with pytest.raises(ValueError, match=r"."):
        promql_parser.parse(f"sum by (agent_type (rate({m.TASKS}[1m]))")


def test_the_contract_covers_every_queried_series() -> None:
    queried = {s.name for _, expr in all_exprs() for s in selectors(expr)}
    # Every agent-manager and cost-engine series is on some dashboard.
    assert queried >= CONTRACT - HISTOGRAMS, CONTRACT - HISTOGRAMS - queried
    for histogram in HISTOGRAMS:
        assert f"{histogram}_bucket" in queried, histogram


# --- the overview's panels ----------------------------------------------------------------


def test_overview_has_the_panels_with_their_units() -> None:
    expected = {
        "Agent throughput": "reqps",
        "Task latency": "s",
        "Success rate": "percentunit",
        "Queue length and in-flight tasks": "short",
        "Healthy agents": "short",
        "Token usage per model": "short",
        "Spend per model": "currencyUSD",
        "Budget burn": "percentunit",
    }
    assert {title: unit(panel(title)) for title in expected} == expected


def series(p: dict[str, Any]) -> set[str | None]:
    return {s.name for t in p["targets"] for s in selectors(t["expr"])}


def test_throughput_is_task_rate_by_agent_type() -> None:
    (target,) = panel("Agent throughput")["targets"]
    assert series(panel("Agent throughput")) == {m.TASKS}
    assert "rate(" in target["expr"]
    assert groupings(target["expr"]) == {("agent_type",)}


def test_latency_is_p50_p95_p99_of_the_histogram() -> None:
    p = panel("Task latency")
    quantiles = []
    for target in p["targets"]:
        node = parse(target["expr"])
        assert isinstance(node, promql_parser.Call) and node.func.name == "histogram_quantile"
        assert isinstance(node.args[0], promql_parser.NumberLiteral)
        quantiles.append(node.args[0].val)
    quantiles.sort()
    assert quantiles == [0.5, 0.95, 0.99]
    assert series(p) == {f"{m.TASK_DURATION}_bucket"}
    for target in p["targets"]:
        assert groupings(target["expr"]) == {("agent_type", "le")}
    steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert P95_LATENCY_SECONDS in [s["value"] for s in steps]


def test_success_rate_is_succeeded_over_all_by_agent_type() -> None:
    p = panel("Success rate")
    (target,) = p["targets"]
    statuses = {
        matcher.value
        for s in selectors(target["expr"])
        for matcher in s.matchers.matchers
        if matcher.name == "status"
    }
    assert statuses == {"succeeded"}
    assert series(p) == {m.TASKS}
    assert groupings(target["expr"]) == {("agent_type",)}
    defaults = p["fieldConfig"]["defaults"]
    assert (defaults["min"], defaults["max"]) == (0, 1)
    assert SUCCESS_RATE_WARNING in [s["value"] for s in defaults["thresholds"]["steps"]]


def test_capacity_panels() -> None:
    assert series(panel("Queue length and in-flight tasks")) == {m.QUEUE_LENGTH, m.IN_FLIGHT}
    assert series(panel("Healthy agents")) == {m.AGENTS_HEALTHY}


def test_tokens_per_model_and_direction() -> None:
    p = panel("Token usage per model")
    (target,) = p["targets"]
    assert series(p) == {m.TOKENS}
    assert groupings(target["expr"]) == {("direction", "model")}


def test_spend_is_usd_per_hour_by_model() -> None:
    p = panel("Spend per model")
    (target,) = p["targets"]
    assert series(p) == {m.COST_USD}
    assert groupings(target["expr"]) == {("model",)}
    assert target["expr"].endswith("* 3600")


def test_budget_burn_is_spend_over_budget_by_scope_and_window() -> None:
    p = panel("Budget burn")
    (target,) = p["targets"]
    assert series(p) == {m.SPEND_USD, m.BUDGET_USD}
    assert groupings(target["expr"]) == {("scope", "window")}
    node = parse(target["expr"])
    assert isinstance(node, promql_parser.BinaryExpr) and str(node.op) == "/"
