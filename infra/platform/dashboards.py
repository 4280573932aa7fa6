"""The platform's Grafana dashboards, defined as code with Grafana's typed builders.

`build_dashboards()` returns each dashboard's JSON model keyed by its uid, ready to be written
to a `<uid>.json` file or a Grafana sidecar ConfigMap. Series names come only from
`contracts.telemetry.metrics` and the alert thresholds from `contracts.telemetry.alerts`, so a
renamed series or a moved threshold changes the panels with it. Pure: no I/O, no Pulumi.
"""

from __future__ import annotations

import json
from typing import Any, Final

from grafana_foundation_sdk.builders import bargauge, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, units
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMapping,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import QueryEditorMode

from contracts.telemetry import metrics as m
from contracts.telemetry.alerts import (
    EMERGENCY_ALERT,
    HEARTBEAT_MAX_AGE_SECONDS,
    P95_LATENCY_SECONDS,
    SUCCESS_RATE_CRITICAL,
    SUCCESS_RATE_WARNING,
)
from contracts.telemetry.queries import success_rate as success_rate_query

__all__ = [
    "AGENT_TYPE_VARIABLE",
    "DATASOURCE_VARIABLE",
    "FLEET_UID",
    "OVERVIEW_UID",
    "RUNTIME_UID",
    "TAG",
    "build_dashboards",
]

# Links, bookmarks and provisioning all address a dashboard by uid: these never change.
OVERVIEW_UID: Final = "agentops-overview"
FLEET_UID: Final = "agentops-fleet"
RUNTIME_UID: Final = "agentops-runtime"
# Every dashboard carries it; the dashboards' link menus list each other through it.
TAG: Final = "agentops"

DATASOURCE_VARIABLE: Final = "datasource"
AGENT_TYPE_VARIABLE: Final = "agent_type"
# With "All" selected the regex matcher matches every agent type, including ones registered
# after the page loaded, which an enumerated `a|b|c` alternative would miss.
_ALL_AGENT_TYPES: Final = ".*"

# Grafana widens it to at least four scrape intervals, so rate() never sees a single sample.
_RATE_WINDOW: Final = "$__rate_interval"
_SECONDS_PER_HOUR: Final = 3600
# Budget-burn colours; the per-stack alert shares live in AlertThresholds, these only shade.
_BUDGET_WARNING_SHARE: Final = 0.8
_BUDGET_EXHAUSTED_SHARE: Final = 1.0
# Load-ratio shading: above this an agent type has little headroom left for a burst.
_LOAD_WARNING_RATIO: Final = 0.8

_GRID_WIDTH: Final = 24
_PANEL_HEIGHT: Final = 8


# --- building blocks ----------------------------------------------------------------------


def _prometheus() -> DataSourceRef:
    # A fresh reference per use: the SDK's models are mutable and shared instances would let a
    # later tweak to one panel leak into every other.
    return DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")


_AGENT_TYPE_FILTER = f'{AGENT_TYPE_VARIABLE}=~"${AGENT_TYPE_VARIABLE}"'


def _agents(metric: str, **matchers: str) -> str:
    """`metric{agent_type=~"$agent_type",k="v"}`: the agent-type picker applies to the series."""
    inner = [_AGENT_TYPE_FILTER]
    inner += [f'{k}="{v}"' for k, v in sorted(matchers.items())]
    return f"{metric}{{{','.join(inner)}}}"


def _rate(selector: str) -> str:
    return f"rate({selector}[{_RATE_WINDOW}])"


def _query(ref_id: str, expr: str, legend: str, *, instant: bool = False) -> prom.Dataquery:
    query = (
        prom.Dataquery()
        .ref_id(ref_id)
        .expr(expr)
        .legend_format(legend)
        .datasource(_prometheus())
        # Hand-written PromQL: the builder editor would try, and fail, to re-model it.
        .editor_mode(QueryEditorMode.CODE)
    )
    return query.instant() if instant else query.range()


def _thresholds(base: str, *steps: tuple[float, str]) -> dash.ThresholdsConfig:
    # Grafana's first step has no value: it is the colour from -Infinity up to the next step.
    return (
        dash.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=None, color=base), *(Threshold(v, c) for v, c in steps)])
    )


def _timeseries(
    panel_id: int, title: str, description: str, unit: str, *, width: int = 8
) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(_prometheus())
        .unit(unit)
        .span(width)
        .height(_PANEL_HEIGHT)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )


def _dashed_thresholds() -> common_builders.GraphThresholdsStyleConfig:
    return common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)


def _stat(panel_id: int, title: str, description: str, unit: str, *, width: int) -> stat.Panel:
    return (
        stat.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(_prometheus())
        .unit(unit)
        .span(width)
        .height(_PANEL_HEIGHT)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def _up_down(up: str, down: str) -> list[ValueMapping]:
    return [
        ValueMap(
            options={
                "0": ValueMappingResult(text=down, color="red", index=0),
                "1": ValueMappingResult(text=up, color="green", index=1),
            }
        )
    ]


def _variables(board: dash.Dashboard) -> dash.Dashboard:
    return board.with_variable(
        dash.DatasourceVariable(DATASOURCE_VARIABLE).label("Data source").type("prometheus")
    ).with_variable(
        dash.QueryVariable(AGENT_TYPE_VARIABLE)
        .label("Agent type")
        .datasource(_prometheus())
        # The registered-agents gauge lists a type as soon as an agent of it registers; the
        # task counter would hide a type until its first task finished.
        .query(f"label_values({m.AGENTS_REGISTERED}, {AGENT_TYPE_VARIABLE})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(_ALL_AGENT_TYPES)
        .current(VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def _dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
    board = (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        # Provisioned from code: an edit saved in the UI would be overwritten on the next deploy.
        .readonly()
        .time("now-6h", "now")
        .refresh("30s")
        .timezone(common.TimeZoneBrowser)
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("Agent platform")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    return _variables(board)


# --- agent platform overview --------------------------------------------------------------
# Panel ids are written out rather than counted so that `viewPanel=<id>` links survive panels
# being reordered; rows take ids from 101 so panels can be added without renumbering them.


def _overview() -> dash.Dashboard:
    total = f"sum by (agent_type) ({_rate(_agents(m.TASKS))})"
    success_rate = success_rate_query(_RATE_WINDOW, (_AGENT_TYPE_FILTER,))
    buckets = f"sum by (agent_type, le) ({_rate(_agents(f'{m.TASK_DURATION}_bucket'))})"
    # `max`, as in the alert catalogue: should the manager run several replicas, each exports
    # the same shared-state gauge and a `sum` would count it once per replica.
    queued = f"max by (agent_type) ({_agents(m.QUEUE_LENGTH)})"
    in_flight = f"max by (agent_type) ({_agents(m.IN_FLIGHT)})"
    healthy = f"max by (agent_type) ({_agents(m.AGENTS_HEALTHY)})"
    tokens = f"sum by (model, direction) ({_rate(_agents(m.TOKENS))})"
    spend = f"sum by (model) ({_rate(_agents(m.COST_USD))}) * {_SECONDS_PER_HOUR}"
    # Budgets are per scope and window, not per agent type: the picker does not apply. A zero
    # budget means "none configured" and would divide to +Inf, so it is dropped.
    burn = f"max by (scope, window) ({m.SPEND_USD}) / max by (scope, window) ({m.BUDGET_USD} > 0)"

    board = _dashboard(
        OVERVIEW_UID,
        "Agent platform overview",
        "Throughput, quality, capacity and cost of the agent platform, per agent type.",
    )
    return (
        board.with_row(dash.Row("Throughput and quality").id(101))
        .with_panel(
            _timeseries(
                1,
                "Agent throughput",
                "Tasks completed per second (succeeded, failed or dead-lettered) by agent type.",
                units.RequestsPerSecond,
            )
            .min(0)
            .with_target(_query("A", total, "{{agent_type}}"))
        )
        .with_panel(
            _timeseries(
                2,
                "Success rate",
                "Share of completed tasks that succeeded, by agent type; the dashed lines are "
                "the warning and critical alert thresholds.",
                units.PercentUnit,
            )
            .min(0)
            .max(1)
            .thresholds(
                _thresholds(
                    "red", (SUCCESS_RATE_CRITICAL, "orange"), (SUCCESS_RATE_WARNING, "green")
                )
            )
            .thresholds_style(_dashed_thresholds())
            .with_target(_query("A", success_rate, "{{agent_type}}"))
        )
        .with_panel(
            _timeseries(
                3,
                "Task latency",
                "Submit-to-completion time percentiles by agent type; the dashed line is the "
                "p95 alert threshold.",
                units.Seconds,
            )
            .min(0)
            .thresholds(_thresholds("green", (P95_LATENCY_SECONDS, "red")))
            .thresholds_style(_dashed_thresholds())
            .with_target(_query("A", f"histogram_quantile(0.5, {buckets})", "{{agent_type}} p50"))
            .with_target(_query("B", f"histogram_quantile(0.95, {buckets})", "{{agent_type}} p95"))
            .with_target(_query("C", f"histogram_quantile(0.99, {buckets})", "{{agent_type}} p99"))
        )
        .with_row(dash.Row("Capacity").id(102))
        .with_panel(
            _timeseries(
                4,
                "Queue length and in-flight tasks",
                "Tasks accepted and waiting (the autoscaling signal) and tasks being worked on, "
                "by agent type.",
                units.Short,
                width=16,
            )
            .min(0)
            .with_target(_query("A", queued, "{{agent_type}} queued"))
            .with_target(_query("B", in_flight, "{{agent_type}} in flight"))
        )
        .with_panel(
            _stat(
                5,
                "Healthy agents",
                "Agents currently passing health checks, by agent type.",
                units.Short,
                width=8,
            )
            .thresholds(_thresholds("red", (1, "green")))
            .with_target(_query("A", healthy, "{{agent_type}}"))
        )
        .with_row(dash.Row("Tokens and cost").id(103))
        .with_panel(
            _timeseries(
                6,
                "Token usage per model",
                "Tokens per second by model and direction (input or output).",
                units.Short,
            )
            .min(0)
            .axis_label("tokens/s")
            .with_target(_query("A", tokens, "{{model}} {{direction}}"))
        )
        .with_panel(
            _timeseries(
                7,
                "Spend per model",
                "Model spend in USD per hour at the current rate, by model.",
                units.Dollars,
            )
            .min(0)
            .axis_label("USD/h")
            .with_target(_query("A", spend, "{{model}}"))
        )
        .with_panel(
            bargauge.Panel()
            .id(8)
            .title("Budget burn")
            .description(
                "Spend so far as a share of the budget, per scope (platform or team) and window "
                "(day or month). Scopes without a budget are not shown."
            )
            .datasource(_prometheus())
            .unit(units.PercentUnit)
            .min(0)
            .max(_BUDGET_EXHAUSTED_SHARE)
            .span(8)
            .height(_PANEL_HEIGHT)
            .orientation(common.VizOrientation.HORIZONTAL)
            .display_mode(common.BarGaugeDisplayMode.GRADIENT)
            .reduce_options(
                common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
            )
            .thresholds(
                _thresholds(
                    "green", (_BUDGET_WARNING_SHARE, "orange"), (_BUDGET_EXHAUSTED_SHARE, "red")
                )
            )
            .with_target(_query("A", burn, "{{scope}} ({{window}})", instant=True))
        )
        .with_row(dash.Row("Cost controls").id(104))
        .with_panel(
            _timeseries(
                9,
                "Cost controls",
                "Per hour: calls refused by a rate limit (by scope and dimension), model "
                "downgrades, check-and-reserve outcomes and budget alerts fired.",
                units.Short,
                width=_GRID_WIDTH,
            )
            .min(0)
            .with_target(
                _query(
                    "A",
                    f"sum by (scope, dimension) (increase({m.RATE_LIMITED}[1h]))",
                    "rate limited {{scope}} {{dimension}}",
                )
            )
            .with_target(
                _query(
                    "B",
                    f"sum by (requested, chosen) (increase({m.DOWNGRADES}[1h]))",
                    "downgraded {{requested}} → {{chosen}}",
                )
            )
            .with_target(
                _query(
                    "C",
                    f"sum by (outcome) (increase({m.RESERVATIONS}[1h]))",
                    "reservations {{outcome}}",
                )
            )
            .with_target(
                _query(
                    "D",
                    f"sum by (scope, window, threshold) (increase({m.BUDGET_ALERTS}[1h]))",
                    "budget alert {{scope}} {{window}} {{threshold}}",
                )
            )
        )
    )


# --- agent fleet and dependencies ---------------------------------------------------------


def _fleet() -> dash.Dashboard:
    load = f"max by (agent_type) ({_agents(m.LOAD_RATIO)})"
    registered = f"max by (agent_type) ({_agents(m.AGENTS_REGISTERED)})"
    healthy = f"max by (agent_type) ({_agents(m.AGENTS_HEALTHY)})"
    heartbeat_age = f"time() - max by (agent_type, agent_id) ({_agents(m.AGENT_LAST_HEARTBEAT)})"
    emergency = f"max({m.EMERGENCY_MODE})"
    # Like the RedisDown alert, an exporter that is not scraped at all reads as "down".
    redis = f"min({m.REDIS_UP}) or vector(0)"
    vault = f"min({m.VAULT_UNSEALED})"

    board = _dashboard(
        FLEET_UID,
        "Agent fleet and dependencies",
        "Agent capacity and liveness, emergency mode, and the services the platform relies on.",
    )
    third = _GRID_WIDTH // 3
    return (
        board.with_row(dash.Row("Agents").id(101))
        .with_panel(
            _timeseries(
                1,
                "Load ratio",
                "In-flight tasks over the total capacity of healthy agents, by agent type.",
                units.PercentUnit,
                width=12,
            )
            .min(0)
            .thresholds(_thresholds("green", (_LOAD_WARNING_RATIO, "orange"), (1, "red")))
            .thresholds_style(_dashed_thresholds())
            .with_target(_query("A", load, "{{agent_type}}"))
        )
        .with_panel(
            _timeseries(
                2,
                "Registered and healthy agents",
                "Agents registered with the manager and those passing health checks.",
                units.Short,
                width=12,
            )
            .min(0)
            .with_target(_query("A", registered, "{{agent_type}} registered"))
            .with_target(_query("B", healthy, "{{agent_type}} healthy"))
        )
        .with_panel(
            _timeseries(
                3,
                "Heartbeat age",
                "Seconds since each agent's last heartbeat; the dashed line is the alert limit.",
                units.Seconds,
                width=_GRID_WIDTH,
            )
            .min(0)
            .thresholds(_thresholds("green", (HEARTBEAT_MAX_AGE_SECONDS, "red")))
            .thresholds_style(_dashed_thresholds())
            .with_target(_query("A", heartbeat_age, "{{agent_type}} {{agent_id}}"))
        )
        .with_row(dash.Row("Platform").id(102))
        .with_panel(
            _stat(
                4,
                "Emergency mode",
                f"Whether the agent manager is in emergency mode, which it enters while "
                f"{EMERGENCY_ALERT} fires.",
                units.Short,
                width=third,
            )
            .mappings(
                [
                    ValueMap(
                        options={
                            "0": ValueMappingResult(text="Normal", color="green", index=0),
                            "1": ValueMappingResult(text="EMERGENCY", color="red", index=1),
                        }
                    )
                ]
            )
            .with_target(_query("A", emergency, "emergency mode"))
        )
        .with_panel(
            _stat(
                5, "Redis", "Whether the Redis exporter reports Redis up.", units.Short, width=third
            )
            .mappings(_up_down("Up", "Down"))
            .with_target(_query("A", redis, "redis"))
        )
        .with_panel(
            _stat(6, "Vault", "Whether Vault reports itself unsealed.", units.Short, width=third)
            .mappings(_up_down("Unsealed", "Sealed"))
            .with_target(_query("A", vault, "vault"))
        )
    )


# --- runtime internals -------------------------------------------------------------------


def _quantile(q: float, histogram: str, by: str, selector: str | None = None) -> str:
    series = selector or f"{histogram}_bucket"
    return f"histogram_quantile({q}, sum by ({by}, le) ({_rate(series)}))"


def _runtime() -> dash.Dashboard:
    submissions = f"sum by (agent_type, outcome) ({_rate(_agents(m.SUBMISSIONS))})"
    success = f"max by (agent_type) ({_agents(m.SUCCESS_RATE)})"
    retries = f"sum by (agent_type, outcome) ({_rate(_agents(m.RETRIES))})"
    wait_p95 = _quantile(0.95, m.TASK_WAIT, "agent_type", _agents(f"{m.TASK_WAIT}_bucket"))
    tokens = f"sum by (model, direction) ({_rate(_agents(m.TASK_TOKENS))})"
    http = f"sum by (endpoint, code) ({_rate(m.HTTP_REQUESTS)})"
    http_p95 = _quantile(0.95, m.HTTP_DURATION, "endpoint")
    worker_tasks = f"sum by (agent_type, status) ({_rate(_agents(m.WORKER_TASKS))})"
    worker_in_flight = f"sum by (agent_type) ({_agents(m.WORKER_IN_FLIGHT)})"
    worker_p95 = _quantile(
        0.95, m.WORKER_TASK_DURATION, "agent_type", _agents(f"{m.WORKER_TASK_DURATION}_bucket")
    )
    worker_tokens = f"sum by (agent_type, model) ({_rate(_agents(m.WORKER_TOKENS))})"
    tool_calls = (
        f"sum by (agent_type, server, tool, outcome) ({_rate(_agents(m.WORKER_TOOL_CALLS))})"
    )
    tool_p95 = _quantile(
        0.95,
        m.WORKER_TOOL_CALL_DURATION,
        "server, tool",
        _agents(f"{m.WORKER_TOOL_CALL_DURATION}_bucket"),
    )

    board = _dashboard(
        RUNTIME_UID,
        "Agent runtime internals",
        "Admission, retries, queue wait and API traffic of the manager; what the workers run.",
    )
    half = _GRID_WIDTH // 2
    return (
        board.with_row(dash.Row("Manager").id(101))
        .with_panel(
            _timeseries(
                1,
                "Submissions by outcome",
                "Accepted, duplicate (idempotency key seen), refused because the queue is full "
                "or because of emergency mode; per second.",
                units.RequestsPerSecond,
                width=half,
            ).with_target(_query("A", submissions, "{{agent_type}} {{outcome}}"))
        )
        .with_panel(
            _timeseries(
                2,
                "Success rate (last completions)",
                "Share of each type's most recent completions that succeeded.",
                units.PercentUnit,
                width=half,
            )
            .min(0)
            .max(1)
            .thresholds(
                _thresholds(
                    "red", (SUCCESS_RATE_CRITICAL, "orange"), (SUCCESS_RATE_WARNING, "green")
                )
            )
            .thresholds_style(_dashed_thresholds())
            .with_target(_query("A", success, "{{agent_type}}"))
        )
        .with_panel(
            _timeseries(
                3,
                "Retries and dead letters",
                "Tasks given back for another attempt (silent agent, retryable failure) and "
                "those out of attempts; per second.",
                units.RequestsPerSecond,
                width=half,
            ).with_target(_query("A", retries, "{{agent_type}} {{outcome}}"))
        )
        .with_panel(
            _timeseries(
                4,
                "Queue wait p95",
                "Seconds from submission until an agent starts the task.",
                units.Seconds,
                width=half,
            ).with_target(_query("A", wait_p95, "{{agent_type}}"))
        )
        .with_panel(
            _timeseries(
                5,
                "Tokens reported by tasks",
                "Tokens per second by model, as the agents reported them with their results.",
                units.Short,
                width=half,
            ).with_target(_query("A", tokens, "{{model}} {{direction}}"))
        )
        .with_panel(
            _timeseries(
                6,
                "API requests",
                "Requests per second by route and status code, every runtime service.",
                units.RequestsPerSecond,
                width=half,
            )
            .with_target(_query("A", http, "{{endpoint}} {{code}}"))
            .with_target(_query("B", http_p95, "p95 {{endpoint}}"))
        )
        .with_row(dash.Row("Workers").id(102))
        .with_panel(
            _timeseries(
                7,
                "Worker outcomes",
                "Tasks the workers ran, by outcome, per second.",
                units.RequestsPerSecond,
                width=half,
            ).with_target(_query("A", worker_tasks, "{{agent_type}} {{status}}"))
        )
        .with_panel(
            _timeseries(
                8,
                "Worker load and handler time",
                "Tasks running on the workers, and the handlers' p95 duration.",
                units.Short,
                width=half,
            )
            .with_target(_query("A", worker_in_flight, "{{agent_type}} in flight"))
            .with_target(_query("B", worker_p95, "{{agent_type}} p95 s"))
        )
        .with_panel(
            _timeseries(
                9,
                "Worker tokens",
                "Tokens per second the workers' handlers spent, by model.",
                units.Short,
                width=half,
            ).with_target(_query("A", worker_tokens, "{{agent_type}} {{model}}"))
        )
        .with_panel(
            _timeseries(
                90,
                "Tool calls",
                "MCP tool calls per second by server, tool and outcome (refused: the pool may "
                "not use the tool; over_limit: the task's or the team's limit).",
                units.Short,
                width=half,
            )
            .with_target(_query("A", tool_calls, "{{agent_type}} {{server}}/{{tool}} {{outcome}}"))
            .with_target(_query("B", tool_p95, "{{server}}/{{tool}} p95 s"))
        )
        .with_row(dash.Row("Durability").id(103))
        .with_panel(
            _timeseries(
                10,
                "Dead letters and abandoned attempts",
                "Entries in the dead-letter stream against its cap, and attempts reclaimed "
                "mid-work from silent agents per second (the only way work runs twice).",
                units.Short,
                width=half,
            )
            .with_target(_query("A", f"max({m.DEAD_LETTERS})", "dead letters"))
            .with_target(_query("B", f"max({m.DEAD_LETTER_CAP})", "cap"))
            .with_target(
                _query(
                    "C", f"sum by (agent_type) ({_rate(m.ABANDONED)})", "{{agent_type}} abandoned"
                )
            )
        )
        .with_panel(
            _timeseries(
                11,
                "Token files readable",
                "1 while each service can re-read its bearer-token files; 0 means it serves "
                "with its last good tokens and is unready.",
                units.Short,
                width=half,
            ).with_target(
                _query("A", f"min by (job, realm) ({m.TOKEN_FILE_OK})", "{{job}} {{realm}}")
            )
        )
    )


# --- rendering ----------------------------------------------------------------------------


def _to_json(board: dash.Dashboard) -> dict[str, Any]:
    # The SDK's models serialise through its encoder only; a round trip through JSON text turns
    # them into plain dicts that any json/yaml writer (or Pulumi) accepts.
    decoded: object = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    if not isinstance(decoded, dict):
        raise TypeError(f"dashboard {board.build().uid!r} did not encode to a JSON object")
    return decoded


def build_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard's JSON model keyed by its uid (safe as a file name: `<uid>.json`)."""
    boards: dict[str, dict[str, Any]] = {}
    for board in (_overview(), _fleet(), _runtime()):
        model = _to_json(board)
        uid = model["uid"]
        if uid in boards:
            raise ValueError(f"two dashboards share the uid {uid!r}")
        boards[uid] = model
    return boards
