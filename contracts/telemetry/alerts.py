"""The platform's alert catalogue: every alerting rule, defined once, rendered for Prometheus.

`render_rule_groups(build_catalogue(thresholds))` is both a Prometheus rule file and the `spec`
of a prometheus-operator `PrometheusRule`. Series names come only from
`contracts.telemetry.metrics`, so renaming a series changes the rules with it instead of leaving
an alert that silently never matches. Pure: no I/O, no Pulumi, no Prometheus client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

from contracts.telemetry import metrics as m
from contracts.telemetry.queries import success_rate as success_rate_query

__all__ = [
    "EMERGENCY_ALERT",
    "HEARTBEAT_MAX_AGE_SECONDS",
    "P95_LATENCY_SECONDS",
    "SEVERITIES",
    "SUCCESS_RATE_CRITICAL",
    "SUCCESS_RATE_WARNING",
    "AlertRule",
    "AlertThresholds",
    "RuleGroup",
    "Severity",
    "alert_names",
    "budget_alert_name",
    "build_catalogue",
    "render_rule_groups",
]

Severity = Literal["warning", "critical"]
SEVERITIES: Final[tuple[str, ...]] = get_args(Severity)

# The agent manager's Alertmanager webhook enters emergency mode when this alert fires; it
# imports the name rather than repeating it.
EMERGENCY_ALERT: Final = "AgentSuccessRateCritical"

# Fixed by the operations guide for every environment, so they are constants rather than
# per-stack knobs in AlertThresholds.
SUCCESS_RATE_WARNING: Final = 0.9
SUCCESS_RATE_CRITICAL: Final = 0.8
P95_LATENCY_SECONDS: Final = 30
HEARTBEAT_MAX_AGE_SECONDS: Final = 60

# The cost engine's `window` label values → the adjective alert names and summaries use.
_BUDGET_WINDOWS: Final = {"day": "daily", "month": "monthly"}
# A budget gauge is compared with the configured figure to the cent: closer is float noise.
_BUDGET_TOLERANCE_USD: Final = "0.005"

_ALERT_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Prometheus' own duration grammar: units largest first, each at most once.
_DURATION = re.compile(r"(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?")
# Set by Prometheus or by the rule itself; an extra label may not shadow them.
_RESERVED_LABELS: Final = frozenset({"alertname", "severity"})


def _check_duration(value: str, what: str) -> None:
    if not value or _DURATION.fullmatch(value) is None:
        raise ValueError(f"{what} must be a Prometheus duration such as 5m or 1h30m: {value!r}")


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule; `description` may use `{{ $labels.x }}` and `{{ $value }}`."""

    name: str
    expr: str
    for_: str
    severity: Severity
    summary: str
    description: str
    action: str
    # Excluded from the hash because a mapping is not hashable; still compared by ==.
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    # Alerts about the same problem this one makes redundant while it fires (Alertmanager
    # inhibits them), for result series equal on `supersedes_on`; both alerts must carry
    # those labels, or the inhibition would reach across problems.
    supersedes: tuple[str, ...] = ()
    supersedes_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if _ALERT_NAME.fullmatch(self.name) is None:
            raise ValueError(f"alert name must be CamelCase: {self.name!r}")
        if not self.expr.strip():
            raise ValueError(f"{self.name}: expr is empty")
        _check_duration(self.for_, f"{self.name}: for_")
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.name}: severity must be one of {SEVERITIES}")
        for text in ("summary", "description", "action"):
            if not getattr(self, text).strip():
                raise ValueError(f"{self.name}: {text} is empty")
        for key in self.labels:
            if _LABEL_NAME.fullmatch(key) is None or key.startswith("__"):
                raise ValueError(f"{self.name}: invalid label name {key!r}")
            if key in _RESERVED_LABELS:
                raise ValueError(f"{self.name}: label {key!r} is set by the catalogue")
        if bool(self.supersedes) != bool(self.supersedes_on):
            raise ValueError(f"{self.name}: supersedes needs supersedes_on labels and back")
        # A read-only copy: a caller's dict changed later must not change a frozen rule.
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))


@dataclass(frozen=True)
class RuleGroup:
    """A Prometheus rule group; `interval` overrides the global evaluation interval."""

    name: str
    rules: tuple[AlertRule, ...]
    interval: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("rule group name is empty")
        if not self.rules:
            raise ValueError(f"rule group {self.name!r} has no rules")
        if self.interval is not None:
            _check_duration(self.interval, f"rule group {self.name!r}: interval")


@dataclass(frozen=True)
class AlertThresholds:
    """The per-environment numbers the catalogue is built from.

    `daily_budget_usd` and `monthly_budget_usd` are the platform-wide budget the cost engine is
    configured with and exports as the `BUDGET_USD{scope="platform"}` gauge. Burn alerts divide
    by that gauge, so team budgets need no figure here; these two values only let the catalogue
    notice a cost engine that exports no budget, or a different one, which would otherwise leave
    every burn alert silently unable to fire.
    """

    hourly_token_budget: int
    daily_budget_usd: Decimal
    monthly_budget_usd: Decimal
    budget_thresholds: tuple[float, ...]
    # A queue of a few tasks rising for a while is normal ramp-up, not worth a page.
    queue_length_floor: int = 10
    # The success-rate window, and a `for` that replaces every rule's: production keeps the
    # defaults; the local platform (`agentops dev`) shortens both so an alert fires and resolves
    # within a demo or an end-to-end test, with the very same rules otherwise.
    success_window: str = "5m"
    pending_override: str | None = None

    def __post_init__(self) -> None:
        # bool is an int; a True budget is a config bug, not one token.
        if isinstance(self.hourly_token_budget, bool) or self.hourly_token_budget <= 0:
            raise ValueError("hourly_token_budget must be a positive int")
        for label, usd in (("daily", self.daily_budget_usd), ("monthly", self.monthly_budget_usd)):
            if not usd.is_finite() or usd <= 0:
                raise ValueError(f"{label}_budget_usd must be a positive amount: {usd}")
        if not self.budget_thresholds:
            raise ValueError("budget_thresholds needs at least one share")
        if any(not 0 < t <= 1 for t in self.budget_thresholds):
            raise ValueError(f"budget_thresholds must lie in (0, 1]: {self.budget_thresholds}")
        if list(self.budget_thresholds) != sorted(set(self.budget_thresholds)):
            raise ValueError(
                f"budget_thresholds must be strictly ascending: {self.budget_thresholds}"
            )
        if isinstance(self.queue_length_floor, bool) or self.queue_length_floor < 0:
            raise ValueError("queue_length_floor must be a non-negative int")
        _check_duration(self.success_window, "success_window")
        if self.pending_override is not None:
            _check_duration(self.pending_override, "pending_override")


def _percent(share: float) -> str:
    # Through str so 0.07 reads 7, not 7.000000000000000666…; "f" so 1.0 reads 100, not 1E+2.
    return format((Decimal(str(share)) * 100).normalize(), "f")


def budget_alert_name(share: float, window: str) -> str:
    """`BudgetBurn80PercentDaily`; a fractional share reads `BudgetBurn92Point5PercentMonthly`."""
    adjective = _BUDGET_WINDOWS.get(window)
    if adjective is None:
        raise ValueError(f"unknown budget window {window!r}")
    percent = _percent(share).replace(".", "Point")
    return f"BudgetBurn{percent}Percent{adjective.capitalize()}"


def _selector(metric: str, **matchers: str) -> str:
    if not matchers:
        return metric
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(matchers.items()))
    return f"{metric}{{{inner}}}"


def _agent_rules(t: AlertThresholds) -> tuple[AlertRule, ...]:
    success_rate = success_rate_query(t.success_window)
    window = "last 5 minutes" if t.success_window == "5m" else f"last {t.success_window}"
    success_description = (
        "{{ $value | humanizePercentage }} of {{ $labels.agent_type }} tasks succeeded over the "
        f"{window} (failed and dead-lettered tasks count as failures)."
    )
    queue = f"max by (agent_type) ({m.QUEUE_LENGTH})"
    return (
        AlertRule(
            name="AgentSuccessRateLow",
            expr=f"{success_rate} < {SUCCESS_RATE_WARNING}",
            for_="5m",
            severity="warning",
            summary=(f"{{{{ $labels.agent_type }}}} success rate below {SUCCESS_RATE_WARNING:.0%}"),
            description=success_description,
            action=(
                "Scale up the {{ $labels.agent_type }} agents and check the failing tasks' "
                "errors (model provider, tool timeouts)."
            ),
        ),
        AlertRule(
            name=EMERGENCY_ALERT,
            expr=f"{success_rate} < {SUCCESS_RATE_CRITICAL}",
            for_="3m",
            severity="critical",
            summary=(
                f"{{{{ $labels.agent_type }}}} success rate below {SUCCESS_RATE_CRITICAL:.0%}"
            ),
            description=success_description,
            action=(
                "The agent manager enters emergency mode on this alert; find the cause of the "
                "failures, then confirm emergency mode ends once the alert resolves."
            ),
            supersedes=("AgentSuccessRateLow",),
            supersedes_on=("agent_type",),
        ),
        AlertRule(
            name="AgentLatencyP95High",
            expr=(
                "histogram_quantile(0.95, sum by (agent_type, le) "
                f"(rate({m.TASK_DURATION}_bucket[5m]))) > {P95_LATENCY_SECONDS}"
            ),
            for_="10m",
            severity="warning",
            summary=(
                f"{{{{ $labels.agent_type }}}} p95 response time above {P95_LATENCY_SECONDS} s"
            ),
            description=(
                '95% of {{ $labels.agent_type }} tasks complete within {{ printf "%.1f" $value }} '
                "s, submit to completion, over the last 5 minutes."
            ),
            action="Scale up the {{ $labels.agent_type }} agents or move them to a faster model.",
        ),
        AlertRule(
            name="AgentQueueGrowing",
            # Value of the left side: the queue length, which the description shows.
            expr=(
                f"{queue} > {t.queue_length_floor} and max by (agent_type) "
                f"(deriv({m.QUEUE_LENGTH}[10m])) > 0"
            ),
            for_="15m",
            severity="warning",
            summary="{{ $labels.agent_type }} task queue keeps growing",
            description=(
                '{{ printf "%.0f" $value }} {{ $labels.agent_type }} tasks are waiting and the '
                "queue has grown for 15 minutes: work arrives faster than the agents finish it."
            ),
            action=(
                "Scale up the {{ $labels.agent_type }} agents; if the autoscaler is at its "
                "maximum, raise the maximum or the node capacity."
            ),
        ),
        AlertRule(
            name="AgentHeartbeatMissing",
            # max over manager replicas: any replica having seen a recent beat is enough.
            expr=(
                "time() - max by (agent_type, agent_id) "
                f"({m.AGENT_LAST_HEARTBEAT}) > {HEARTBEAT_MAX_AGE_SECONDS}"
            ),
            for_="2m",
            severity="critical",
            summary="Agent {{ $labels.agent_id }} stopped sending heartbeats",
            description=(
                "The last heartbeat of {{ $labels.agent_type }} agent {{ $labels.agent_id }} is "
                '{{ printf "%.0f" $value }} s old (limit '
                f"{HEARTBEAT_MAX_AGE_SECONDS} s)."
            ),
            action=(
                "Check the agent's pod (crash loop, OOM kill, network policy); replace it if it "
                "does not recover."
            ),
        ),
        AlertRule(
            name="NoHealthyAgents",
            expr=(
                f"max by (agent_type) ({m.AGENTS_HEALTHY}) == 0 "
                f"and max by (agent_type) ({m.AGENTS_REGISTERED}) > 0"
            ),
            for_="2m",
            severity="critical",
            summary="No healthy {{ $labels.agent_type }} agent",
            description=(
                "{{ $labels.agent_type }} agents are registered but none is healthy: "
                "{{ $labels.agent_type }} tasks cannot run."
            ),
            action=(
                "Inspect the {{ $labels.agent_type }} pods and their dependencies (Redis, Vault, "
                "model provider) and restart or roll back the agents."
            ),
        ),
    )


def _cost_rules(t: AlertThresholds) -> tuple[AlertRule, ...]:
    rules = [
        AlertRule(
            name="HourlyTokenBudgetExceeded",
            expr=f"sum(increase({m.TOKENS}[1h])) > {t.hourly_token_budget}",
            for_="5m",
            severity="critical",
            summary="Token usage above the hourly budget",
            description=(
                '{{ printf "%.0f" $value }} tokens were used across the platform in the last '
                f"hour; the budget is {t.hourly_token_budget}."
            ),
            action=(
                "Find the agent type or team driving the usage, throttle it or downgrade its "
                "model; raise the budget only if the load is expected."
            ),
        )
    ]
    configured = {"day": t.daily_budget_usd, "month": t.monthly_budget_usd}
    for window, adjective in _BUDGET_WINDOWS.items():
        spend = f"max by (scope, window) ({_selector(m.SPEND_USD, window=window)})"
        # A zero budget would divide to +Inf and fire every threshold: treat it as "no budget".
        budget = f"max by (scope, window) ({_selector(m.BUDGET_USD, window=window)} > 0)"
        for position, share in enumerate(t.budget_thresholds):
            exhausted = share >= 1
            lower = tuple(budget_alert_name(s, window) for s in t.budget_thresholds[:position])
            rules.append(
                AlertRule(
                    name=budget_alert_name(share, window),
                    expr=f"{spend} / {budget} >= {share}",
                    for_="5m",
                    severity="critical" if exhausted else "warning",
                    summary=(
                        f"{{{{ $labels.scope }}}} has spent {_percent(share)}% of its "
                        f"{adjective} budget"
                    ),
                    description=(
                        "{{ $labels.scope }} has spent {{ $value | humanizePercentage }} of its "
                        f"budget for the current {window}."
                    ),
                    action=(
                        "The budget is spent: the cost engine refuses or downgrades work; raise "
                        "the budget or stop the spending workload."
                        if exhausted
                        else "Review what is spending (cost engine usage report) and downgrade "
                        "models or pause non-urgent work before the budget runs out."
                    ),
                    labels={"threshold": str(share)},
                    # The higher share of the same budget says everything the lower ones do.
                    supersedes=lower,
                    supersedes_on=("scope", "window") if lower else (),
                )
            )
        platform = _selector(m.BUDGET_USD, scope="platform", window=window)
        usd = format(configured[window], "f")
        rules.append(
            AlertRule(
                name=f"PlatformBudgetMismatch{adjective.capitalize()}",
                expr=(
                    f"abs(max by (scope, window) ({platform}) - {usd}) > {_BUDGET_TOLERANCE_USD} "
                    f"or absent({platform})"
                ),
                for_="15m",
                severity="warning",
                summary=f"Cost engine does not export the configured {adjective} platform budget",
                description=(
                    f"The platform's budget for the current {window} is configured as {usd} USD, "
                    f"but the cost engine exports another figure or none ({m.BUDGET_USD}), so "
                    "budget burn alerts are wrong or cannot fire."
                ),
                action=(
                    "Check the cost engine is running and scraped, and that its budget "
                    "configuration was rolled out with the current stack."
                ),
            )
        )
    return tuple(rules)


def _dependency_rules() -> tuple[AlertRule, ...]:
    return (
        AlertRule(
            name="RedisDown",
            # absent(): an exporter that is gone must page as loudly as one that reports down.
            expr=f"{m.REDIS_UP} == 0 or absent({m.REDIS_UP})",
            for_="1m",
            severity="critical",
            summary="Redis is down",
            description=(
                f"The Redis exporter reports Redis down, or no {m.REDIS_UP} series is scraped: "
                "the task queue and the agent registry are unavailable."
            ),
            action=(
                "Check the Redis pod and its volume, restart or fail over; the agent manager "
                "cannot accept tasks until Redis is back."
            ),
        ),
        AlertRule(
            name="VaultSealed",
            # A sealed Vault refuses the token Prometheus scrapes with, so its series vanish
            # rather than read 0: absent() is what catches a whole sealed cluster.
            # max per server: after unsealing, Vault keeps reporting a stale `cluster=""`
            # series at 0 until its retention ends (seen on a real OpenBao server).
            expr=(f"max by (instance) ({m.VAULT_UNSEALED}) == 0 or absent({m.VAULT_UNSEALED})"),
            for_="1m",
            severity="critical",
            summary="Vault is sealed or not scraped",
            description=(
                "Vault {{ $labels.instance }} reports itself sealed, or no "
                f"{m.VAULT_UNSEALED} series is scraped (a sealed Vault refuses the metrics "
                "token): services cannot read secrets or renew their leases."
            ),
            action="Unseal Vault (auto-unseal key, or the unseal runbook) and find why it sealed.",
        ),
    )


# Share of the dead-letter cap at which an operator is told, before the oldest are trimmed.
DEAD_LETTER_WARN_SHARE = 0.8


def _runtime_state_rules() -> tuple[AlertRule, ...]:
    return (
        AlertRule(
            name="DeadLettersNearCap",
            expr=(f"max({m.DEAD_LETTERS}) / max({m.DEAD_LETTER_CAP}) > {DEAD_LETTER_WARN_SHARE}"),
            for_="10m",
            severity="warning",
            summary="The dead-letter stream is close to its cap",
            description=(
                f"More than {DEAD_LETTER_WARN_SHARE:.0%} of the dead-letter cap is used: past "
                "the cap the oldest dead letters are trimmed and lost to inspection."
            ),
            action=(
                "Inspect and replay or discard the dead letters (see the runbook), fix what "
                "made them fail, or raise agents.manager.deadLetterCap."
            ),
        ),
        AlertRule(
            name="TokenFileUnreadable",
            expr=f"min by (job, realm) ({m.TOKEN_FILE_OK}) == 0",
            for_="5m",
            severity="warning",
            summary="A {{ $labels.realm }} token file cannot be read",
            description=(
                "{{ $labels.job }} cannot re-read its {{ $labels.realm }} token file (empty, "
                "unreadable or invalid): it serves with the last good tokens and is unready, so "
                "a rotation will lock callers out."
            ),
            action=(
                "Check the Vault agent that renders the file and the KV entry behind it; "
                "restore the tokens, then finish the rotation."
            ),
        ),
    )


def build_catalogue(t: AlertThresholds) -> list[RuleGroup]:
    """Every alert of the platform, grouped; deterministic for given thresholds."""
    groups = [
        RuleGroup(name="agentops.agents", rules=_agent_rules(t)),
        RuleGroup(name="agentops.cost", rules=_cost_rules(t)),
        RuleGroup(name="agentops.dependencies", rules=_dependency_rules()),
        RuleGroup(name="agentops.runtime", rules=_runtime_state_rules()),
    ]
    if t.pending_override is not None:
        pending = t.pending_override
        groups = [
            replace(g, rules=tuple(replace(r, for_=pending) for r in g.rules)) for g in groups
        ]
    _check_unique(groups)
    return groups


def alert_names(groups: Iterable[RuleGroup]) -> tuple[str, ...]:
    """Alert names in catalogue order."""
    return tuple(rule.name for group in groups for rule in group.rules)


def _check_unique(groups: Iterable[RuleGroup]) -> None:
    groups = list(groups)
    known = set(alert_names(groups))
    for rule in (r for g in groups for r in g.rules):
        unknown = sorted(set(rule.supersedes) - known)
        if unknown:
            raise ValueError(f"{rule.name} supersedes alerts not in the catalogue: {unknown}")
    for kind, names in (
        ("rule group", [g.name for g in groups]),
        # Unique alert names let Alertmanager routes and the manager's webhook key on them.
        ("alert", list(alert_names(groups))),
    ):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate {kind} names: {duplicates}")


def _render_rule(rule: AlertRule) -> dict[str, Any]:
    return {
        "alert": rule.name,
        "expr": rule.expr,
        "for": rule.for_,
        "labels": {"severity": rule.severity, **dict(sorted(rule.labels.items()))},
        "annotations": {
            "summary": rule.summary,
            "description": rule.description,
            "action": rule.action,
        },
    }


def render_rule_groups(groups: Iterable[RuleGroup]) -> dict[str, Any]:
    """The rule file (`{"groups": [...]}`), also usable as a `PrometheusRule` spec.

    Groups and rules keep catalogue order and labels are sorted, so equal catalogues render
    byte-identical YAML and a plan diff shows only real changes.
    """
    groups = list(groups)
    _check_unique(groups)
    rendered = []
    for group in groups:
        body: dict[str, Any] = {"name": group.name}
        if group.interval is not None:
            body["interval"] = group.interval
        body["rules"] = [_render_rule(rule) for rule in group.rules]
        rendered.append(body)
    return {"groups": rendered}
