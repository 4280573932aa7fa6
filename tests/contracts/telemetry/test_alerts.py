"""The alert catalogue: shape and validation in Python, behaviour proven by the real promtool.

Every alert gets promtool unit tests generated here: series that breach it (it must fire, with
its labels and expanded annotations) and series that do not (it must stay silent).
`test_every_alert_has_promtool_cases` fails when an alert is added without both.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.telemetry import metrics as m
from contracts.telemetry.alerts import (
    EMERGENCY_ALERT,
    SEVERITIES,
    AlertRule,
    AlertThresholds,
    RuleGroup,
    alert_names,
    budget_alert_name,
    build_catalogue,
    render_rule_groups,
)

THRESHOLDS = AlertThresholds(
    hourly_token_budget=1_000_000,
    daily_budget_usd=Decimal("100"),
    monthly_budget_usd=Decimal("2500"),
    budget_thresholds=(0.5, 0.8, 0.9, 1.0),
)
CATALOGUE = build_catalogue(THRESHOLDS)
RULES: dict[str, AlertRule] = {r.name: r for g in CATALOGUE for r in g.rules}
# A team's own budget, deliberately unlike the platform's: burn alerts must divide by the
# exported gauge of the same scope, not by a configured platform figure.
TEAM = "team:research"
TEAM_BUDGET = {"day": Decimal("40"), "month": Decimal("1000")}
PLATFORM_BUDGET = {"day": THRESHOLDS.daily_budget_usd, "month": THRESHOLDS.monthly_budget_usd}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: run scripts/ensure-apt (installs Debian 'prometheus')"
        )
    return path


def sel(metric: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


# --- promtool cases -----------------------------------------------------------------------


@dataclass(frozen=True)
class Fires:
    """One alert instance expected to fire: the result series' labels and its $value."""

    labels: dict[str, str]
    value: float | None = None


@dataclass(frozen=True)
class Check:
    alert: str
    eval_time: str
    fires: tuple[Fires, ...] = ()  # empty: the alert must not fire


@dataclass(frozen=True)
class Scenario:
    id: str
    series: dict[str, str]  # series selector → promtool expanding notation, one sample a minute
    checks: tuple[Check, ...] = field(default_factory=tuple)


def tasks(agent_type: str, **per_status: str) -> dict[str, str]:
    return {
        sel(m.TASKS, agent_type=agent_type, status=status, endpoint="/v1/tasks"): values
        for status, values in per_status.items()
    }


def success_rate(alert: str, eval_time: str, agent_type: str, value: float) -> Check:
    return Check(alert, eval_time, (Fires({"agent_type": agent_type}, value),))


def buckets(agent_type: str, **per_le: str) -> dict[str, str]:
    return {
        sel(f"{m.TASK_DURATION}_bucket", agent_type=agent_type, le=le.replace("inf", "+Inf")): v
        for le, v in per_le.items()
    }


def agent_scenarios() -> list[Scenario]:
    low, crit = "AgentSuccessRateLow", EMERGENCY_ALERT
    return [
        Scenario(
            # The boundary of the issue: 85 % is a warning, not an emergency; a healthy type
            # next to it stays silent.
            "success-85pct-warns-only",
            {
                **tasks("coder", succeeded="0+85x30", failed="0+15x30"),
                **tasks("reviewer", succeeded="0+95x30", failed="0+5x30"),
            },
            (success_rate(low, "20m", "coder", 0.85), Check(crit, "20m")),
        ),
        Scenario(
            "success-70pct-is-critical",
            tasks("coder", succeeded="0+70x30", failed="0+20x30", dead_lettered="0+10x30"),
            (
                success_rate(low, "20m", "coder", 0.7),
                success_rate(crit, "20m", "coder", 0.7),
                # Breaching since 1m, `for: 3m` not yet elapsed.
                Check(crit, "2m"),
            ),
        ),
        Scenario(
            # No succeeded series exists at all when every task fails.
            "success-all-failed",
            tasks("coder", failed="0+10x30", dead_lettered="0+1x30"),
            (success_rate(low, "20m", "coder", 0.0), success_rate(crit, "20m", "coder", 0.0)),
        ),
        Scenario(
            "success-95pct-healthy",
            tasks("coder", succeeded="0+95x30", failed="0+5x30"),
            (Check(low, "20m"), Check(crit, "20m")),
        ),
        Scenario(
            # 0/0 is NaN: an idle type must not look like a 0 % success rate.
            "no-traffic-is-silent",
            {
                **tasks("coder", succeeded="5x30", failed="1x30"),
                **buckets("coder", **{"10": "3x30", "30": "4x30", "60": "6x30", "inf": "6x30"}),
            },
            (Check(low, "20m"), Check(crit, "20m"), Check("AgentLatencyP95High", "20m")),
        ),
        Scenario(
            "latency-p95-58s",
            buckets("coder", **{"10": "0x30", "30": "0x30", "60": "0+10x30", "inf": "0+10x30"}),
            (Check("AgentLatencyP95High", "20m", (Fires({"agent_type": "coder"}, 58.5),)),),
        ),
        Scenario(
            "latency-p95-9s",
            buckets(
                "coder", **{"10": "0+10x30", "30": "0+10x30", "60": "0+10x30", "inf": "0+10x30"}
            ),
            (Check("AgentLatencyP95High", "20m"),),
        ),
        Scenario(
            "queue-growing",
            {sel(m.QUEUE_LENGTH, agent_type="coder"): "0+5x40"},
            (Check("AgentQueueGrowing", "30m", (Fires({"agent_type": "coder"}, 150),)),),
        ),
        Scenario(
            "queue-steady-high",
            {sel(m.QUEUE_LENGTH, agent_type="coder"): "200x40"},
            (Check("AgentQueueGrowing", "30m"),),
        ),
        Scenario(
            "queue-growing-below-floor",
            {sel(m.QUEUE_LENGTH, agent_type="coder"): "0+0.25x40"},
            (Check("AgentQueueGrowing", "30m"),),
        ),
        Scenario(
            # Timestamps in seconds: "0x20" stopped beating at t=0, "0+60x20" beats every minute.
            "heartbeat-stale",
            {
                sel(m.AGENT_LAST_HEARTBEAT, agent_type="coder", agent_id="coder-1"): "0x20",
                sel(m.AGENT_LAST_HEARTBEAT, agent_type="coder", agent_id="coder-2"): "0+60x20",
            },
            (
                Check(
                    "AgentHeartbeatMissing",
                    "5m",
                    (Fires({"agent_type": "coder", "agent_id": "coder-1"}, 300),),
                ),
            ),
        ),
        Scenario(
            "heartbeat-fresh",
            {sel(m.AGENT_LAST_HEARTBEAT, agent_type="coder", agent_id="coder-2"): "0+60x20"},
            (Check("AgentHeartbeatMissing", "5m"),),
        ),
        Scenario(
            "no-healthy-agent",
            {
                sel(m.AGENTS_HEALTHY, agent_type="coder"): "0x10",
                sel(m.AGENTS_REGISTERED, agent_type="coder"): "3x10",
            },
            (Check("NoHealthyAgents", "5m", (Fires({"agent_type": "coder"}),)),),
        ),
        Scenario(
            # Scaled to zero is not an outage; some healthy agents are not either.
            "healthy-agents-or-scaled-to-zero",
            {
                sel(m.AGENTS_HEALTHY, agent_type="coder"): "0x10",
                sel(m.AGENTS_REGISTERED, agent_type="coder"): "0x10",
                sel(m.AGENTS_HEALTHY, agent_type="reviewer"): "2x10",
                sel(m.AGENTS_REGISTERED, agent_type="reviewer"): "3x10",
            },
            (Check("NoHealthyAgents", "5m"),),
        ),
    ]


def token_scenarios() -> list[Scenario]:
    def tokens(per_minute_in: int, per_minute_out: int) -> dict[str, str]:
        labels = {"agent_type": "coder", "model": "gpt-5"}
        return {
            sel(m.TOKENS, direction="input", **labels): f"0+{per_minute_in}x120",
            sel(m.TOKENS, direction="output", **labels): f"0+{per_minute_out}x120",
        }

    # 1.2 M and 0.6 M tokens an hour against a 1 M budget, summed over series.
    assert THRESHOLDS.hourly_token_budget == 1_000_000
    return [
        Scenario(
            "tokens-over-hourly-budget",
            tokens(12_000, 8_000),
            (Check("HourlyTokenBudgetExceeded", "90m", (Fires({}, 1_200_000),)),),
        ),
        Scenario(
            "tokens-under-hourly-budget",
            tokens(6_000, 4_000),
            (Check("HourlyTokenBudgetExceeded", "90m"),),
        ),
    ]


def usd(amount: Decimal) -> str:
    return format(amount, "f")


def budget_series(window: str, team_spend: Decimal, team_budget: Decimal) -> dict[str, str]:
    # The platform spends 10 % of its budget alongside: only the team's scope may fire.
    platform = PLATFORM_BUDGET[window]
    return {
        sel(m.SPEND_USD, scope=TEAM, window=window): f"{usd(team_spend)}x20",
        sel(m.BUDGET_USD, scope=TEAM, window=window): f"{usd(team_budget)}x20",
        sel(m.SPEND_USD, scope="platform", window=window): f"{usd(platform / 10)}x20",
        sel(m.BUDGET_USD, scope="platform", window=window): f"{usd(platform)}x20",
    }


def budget_scenarios() -> list[Scenario]:
    scenarios = []
    for window in ("day", "month"):
        budget = TEAM_BUDGET[window]
        for share in THRESHOLDS.budget_thresholds:
            name = budget_alert_name(share, window)
            # Decimal so the spend is exactly share × budget: `>=` is tested at its boundary.
            at = Decimal(str(share)) * budget
            labels = {"scope": TEAM, "window": window}
            scenarios += [
                Scenario(
                    f"{name}-at-threshold",
                    budget_series(window, at, budget),
                    (Check(name, "10m", (Fires(labels, share),)),),
                ),
                Scenario(
                    f"{name}-below-threshold",
                    budget_series(window, at - 1, budget),
                    (Check(name, "10m"),),
                ),
            ]
        mismatch = "PlatformBudgetMismatch" + {"day": "Daily", "month": "Monthly"}[window]
        platform_labels = {"scope": "platform", "window": window}
        team_only = {sel(m.BUDGET_USD, scope=TEAM, window=window): f"{usd(budget)}x30"}
        scenarios += [
            Scenario(
                # A zero budget means "none", not an infinite burn.
                f"budget-zero-is-no-budget-{window}",
                budget_series(window, Decimal(5), Decimal(0)),
                tuple(
                    Check(budget_alert_name(s, window), "10m") for s in THRESHOLDS.budget_thresholds
                ),
            ),
            Scenario(
                f"{mismatch}-other-figure",
                {
                    sel(m.BUDGET_USD, scope="platform", window=window): (
                        f"{usd(PLATFORM_BUDGET[window] + 20)}x30"
                    )
                },
                (Check(mismatch, "20m", (Fires(platform_labels),)),),
            ),
            Scenario(
                f"{mismatch}-not-exported",
                team_only,
                (Check(mismatch, "20m", (Fires(platform_labels),)),),
            ),
            Scenario(
                f"{mismatch}-matches",
                {
                    **team_only,
                    sel(m.BUDGET_USD, scope="platform", window=window): (
                        f"{usd(PLATFORM_BUDGET[window])}x30"
                    ),
                },
                (Check(mismatch, "20m"),),
            ),
        ]
    return scenarios


def dependency_scenarios() -> list[Scenario]:
    redis = {"instance": "redis:9121", "job": "redis"}
    vault = {"instance": "vault-0:8200", "job": "vault"}
    return [
        Scenario(
            "redis-down",
            {sel(m.REDIS_UP, **redis): "0x10"},
            (Check("RedisDown", "5m", (Fires(redis),)),),
        ),
        Scenario(
            # Only Vault is scraped: the Redis exporter itself is gone.
            "redis-exporter-absent",
            {sel(m.VAULT_UNSEALED, **vault): "1x10"},
            (Check("RedisDown", "5m", (Fires({}),)),),
        ),
        Scenario("redis-up", {sel(m.REDIS_UP, **redis): "1x10"}, (Check("RedisDown", "5m"),)),
        Scenario(
            "vault-sealed",
            {sel(m.VAULT_UNSEALED, **vault): "1 1 0x10"},
            (Check("VaultSealed", "6m", (Fires({"instance": vault["instance"]}),)),),
        ),
        Scenario(
            # Just unsealed: the server still reports a stale cluster="" series at 0.
            "vault-unsealed-with-stale-series",
            {
                sel(m.VAULT_UNSEALED, cluster="", **vault): "0x10",
                sel(m.VAULT_UNSEALED, cluster="vault-cluster-1", **vault): "1x10",
            },
            (Check("VaultSealed", "5m"),),
        ),
        Scenario(
            "vault-unsealed",
            {sel(m.VAULT_UNSEALED, **vault): "1x10"},
            (Check("VaultSealed", "5m"),),
        ),
        Scenario(
            # A sealed Vault answers the metrics scrape with 503: its series vanish.
            "vault-metrics-gone",
            {sel(m.REDIS_UP, **redis): "1x10", sel(m.VAULT_UNSEALED, **vault): "1 1"},
            (Check("VaultSealed", "3m"), Check("VaultSealed", "9m", (Fires({}),))),
        ),
    ]


def runtime_state_scenarios() -> list[Scenario]:
    manager = {"instance": "manager-0:8080", "job": "agent-manager"}
    cap = {sel(m.DEAD_LETTER_CAP, **manager): "1000x30"}
    tokens = {"instance": "manager-0:8080", "job": "agent-manager", "realm": "tasks"}
    return [
        Scenario(
            "dead-letters-near-cap",
            {**cap, sel(m.DEAD_LETTERS, **manager): "810+5x30"},
            (Check("DeadLettersNearCap", "18m", (Fires({}),)),),
        ),
        Scenario(
            "dead-letters-far-from-cap",
            {**cap, sel(m.DEAD_LETTERS, **manager): "700x20"},
            (Check("DeadLettersNearCap", "18m"),),
        ),
        Scenario(
            "token-file-unreadable",
            {sel(m.TOKEN_FILE_OK, **tokens): "1 0x10"},
            (
                Check(
                    "TokenFileUnreadable",
                    "7m",
                    (Fires({"job": "agent-manager", "realm": "tasks"}),),
                ),
            ),
        ),
        Scenario(
            "token-file-fine",
            {sel(m.TOKEN_FILE_OK, **tokens): "1x10"},
            (Check("TokenFileUnreadable", "7m"),),
        ),
    ]


SCENARIOS = (
    agent_scenarios()
    + token_scenarios()
    + budget_scenarios()
    + dependency_scenarios()
    + runtime_state_scenarios()
)


# Only the template forms the catalogue uses; anything else fails here until taught.
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_LABEL = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")
_PRINTF = re.compile(r'printf "(%\.\d+f)" \$value')


def expand(template: str, labels: dict[str, str], value: float | None) -> str:
    """What Prometheus' template expansion makes of the catalogue's annotations."""

    def one(match: re.Match[str]) -> str:
        expr = match.group(1)
        if label := _LABEL.fullmatch(expr):
            return labels.get(label.group(1), "")
        assert value is not None, f"template uses $value, the case gives none: {template!r}"
        if expr == "$value | humanizePercentage":
            return "%.4g%%" % (value * 100)  # Go's fmt.Sprintf("%.4g%%", v*100)
        if printf := _PRINTF.fullmatch(expr):
            return printf.group(1) % value
        raise AssertionError(f"teach expand() the template {{{{ {expr} }}}}")

    return _TEMPLATE.sub(one, template)


def expected_alert(rule: AlertRule, fires: Fires) -> dict[str, Any]:
    return {
        "exp_labels": {**fires.labels, "severity": rule.severity, **rule.labels},
        "exp_annotations": {
            key: expand(text, fires.labels, fires.value)
            for key, text in (
                ("summary", rule.summary),
                ("description", rule.description),
                ("action", rule.action),
            )
        },
    }


def promtool_test_file(rule_file: Path, scenario: Scenario) -> dict[str, Any]:
    return {
        "rule_files": [str(rule_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": scenario.id,
                "interval": "1m",
                "input_series": [
                    {"series": series, "values": values}
                    for series, values in scenario.series.items()
                ],
                "alert_rule_test": [
                    {
                        "eval_time": check.eval_time,
                        "alertname": check.alert,
                        "exp_alerts": [expected_alert(RULES[check.alert], f) for f in check.fires],
                    }
                    for check in scenario.checks
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def rule_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "agentops.rules.yaml"
    path.write_text(yaml.safe_dump(render_rule_groups(CATALOGUE), sort_keys=False))
    return path


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *argv], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "thresholds",
    [
        THRESHOLDS,
        replace(
            THRESHOLDS,
            budget_thresholds=(0.25, 0.925, 1.0),
            monthly_budget_usd=Decimal("2500.50"),
        ),
    ],
    ids=["default", "fractional-shares"],
)
def test_promtool_check_rules(tmp_path: Path, thresholds: AlertThresholds) -> None:
    groups = build_catalogue(thresholds)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(render_rule_groups(groups)))
    proc = run("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_names(groups))} rules found" in proc.stdout + proc.stderr


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_promtool_unit(scenario: Scenario, rule_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(promtool_test_file(rule_file, scenario), sort_keys=False))
    proc = run("test", "rules", str(path))
    assert proc.returncode == 0, f"{scenario.id}:\n{proc.stdout}{proc.stderr}"


def test_every_alert_has_promtool_cases() -> None:
    checked = {c.alert for s in SCENARIOS for c in s.checks}
    firing = {c.alert for s in SCENARIOS for c in s.checks if c.fires}
    silent = {c.alert for s in SCENARIOS for c in s.checks if not c.fires}
    names = set(RULES)
    assert checked <= names, f"cases for alerts not in the catalogue: {sorted(checked - names)}"
    assert names <= firing, f"alerts without a case that fires them: {sorted(names - firing)}"
    assert names <= silent, f"alerts without a case that stays silent: {sorted(names - silent)}"
    assert len({s.id for s in SCENARIOS}) == len(SCENARIOS)


def test_expand_matches_known_expansions() -> None:
    # Pins expand() to Prometheus' output for forms whose rounding is easy to get wrong.
    assert expand("{{ $value | humanizePercentage }}", {}, 0.8499999999999999) == "85%"
    assert expand("{{ $value | humanizePercentage }}", {}, 0.925) == "92.5%"
    assert expand('{{ printf "%.0f" $value }}', {}, 1_199_999.6) == "1200000"
    assert expand("{{ $labels.agent_type }}/{{ $labels.missing }}", {"agent_type": "a"}, None) == (
        "a/"
    )


# --- the catalogue in Python --------------------------------------------------------------


def test_names_unique_camel_case_and_listed() -> None:
    names = alert_names(CATALOGUE)
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]*", n) for n in names)
    assert set(names) == set(RULES)
    assert EMERGENCY_ALERT in names


def test_every_rule_is_documented_with_a_valid_severity() -> None:
    for rule in RULES.values():
        assert rule.summary.strip() and rule.description.strip() and rule.action.strip()
        assert rule.severity in SEVERITIES


def test_issue_severities_and_durations() -> None:
    expected = {
        "AgentSuccessRateLow": ("warning", "5m"),
        EMERGENCY_ALERT: ("critical", "3m"),
        "AgentLatencyP95High": ("warning", "10m"),
        "AgentQueueGrowing": ("warning", "15m"),
        "AgentHeartbeatMissing": ("critical", "2m"),
        "HourlyTokenBudgetExceeded": ("critical", "5m"),
        "RedisDown": ("critical", "1m"),
        "VaultSealed": ("critical", "1m"),
    }
    for name, (severity, for_) in expected.items():
        assert (RULES[name].severity, RULES[name].for_) == (severity, for_), name
    assert "scale up" in RULES["AgentSuccessRateLow"].action.lower()
    for window in ("day", "month"):
        for share in THRESHOLDS.budget_thresholds:
            rule = RULES[budget_alert_name(share, window)]
            assert rule.severity == ("critical" if share >= 1 else "warning")
            assert rule.labels == {"threshold": str(share)}


def test_thresholds_reach_the_expressions() -> None:
    other = AlertThresholds(
        hourly_token_budget=1_234_567,
        daily_budget_usd=Decimal("321.5"),
        monthly_budget_usd=Decimal("9876"),
        budget_thresholds=(0.6, 0.95),
        queue_length_floor=42,
    )
    rules = {r.name: r for g in build_catalogue(other) for r in g.rules}
    assert "> 1234567" in rules["HourlyTokenBudgetExceeded"].expr
    assert rules["HourlyTokenBudgetExceeded"].expr != RULES["HourlyTokenBudgetExceeded"].expr
    assert "> 42" in rules["AgentQueueGrowing"].expr
    assert "- 321.5)" in rules["PlatformBudgetMismatchDaily"].expr
    assert "- 9876)" in rules["PlatformBudgetMismatchMonthly"].expr
    burn = sorted(n for n in rules if n.startswith("BudgetBurn"))
    assert burn == sorted(
        [
            "BudgetBurn60PercentDaily",
            "BudgetBurn95PercentDaily",
            "BudgetBurn60PercentMonthly",
            "BudgetBurn95PercentMonthly",
        ]
    )
    assert rules["BudgetBurn95PercentMonthly"].expr.endswith(">= 0.95")
    # The dollar figure is read from the gauge, never baked into a burn rule.
    assert all("321.5" not in rules[n].expr for n in burn)


def test_metric_names_come_from_the_contract() -> None:
    exprs = " ".join(r.expr for r in RULES.values())
    for metric in (
        m.TASKS,
        m.TASK_DURATION,
        m.QUEUE_LENGTH,
        m.AGENTS_HEALTHY,
        m.AGENTS_REGISTERED,
        m.AGENT_LAST_HEARTBEAT,
        m.TOKENS,
        m.SPEND_USD,
        m.BUDGET_USD,
        m.REDIS_UP,
        m.VAULT_UNSEALED,
    ):
        assert metric in exprs
    source = (Path(__file__).parents[3] / "contracts/telemetry/alerts.py").read_text()
    assert f"{m.PREFIX}_" not in source and "redis_up" not in source and "vault_core" not in source


def test_render_shape_and_determinism() -> None:
    rendered = render_rule_groups(CATALOGUE)
    assert rendered == render_rule_groups(build_catalogue(THRESHOLDS))
    assert yaml.safe_dump(rendered) == yaml.safe_dump(render_rule_groups(CATALOGUE))
    assert [g["name"] for g in rendered["groups"]] == [g.name for g in CATALOGUE]
    first = rendered["groups"][0]["rules"][0]
    assert list(first) == ["alert", "expr", "for", "labels", "annotations"]
    assert list(first["annotations"]) == ["summary", "description", "action"]
    burn = next(
        r
        for g in rendered["groups"]
        for r in g["rules"]
        if r["alert"] == "BudgetBurn50PercentDaily"
    )
    assert burn["labels"] == {"severity": "warning", "threshold": "0.5"}
    grouped = render_rule_groups([RuleGroup("g", (RULES["RedisDown"],), interval="30s")])
    assert grouped["groups"][0]["interval"] == "30s"


def test_fractional_share_names() -> None:
    assert budget_alert_name(0.925, "month") == "BudgetBurn92Point5PercentMonthly"
    assert budget_alert_name(1.0, "day") == "BudgetBurn100PercentDaily"
    assert budget_alert_name(0.07, "day") == "BudgetBurn7PercentDaily"
    with pytest.raises(ValueError, match="window"):
        budget_alert_name(0.5, "week")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hourly_token_budget": 0}, "hourly_token_budget"),
        ({"hourly_token_budget": True}, "hourly_token_budget"),
        ({"daily_budget_usd": Decimal(0)}, "daily_budget_usd"),
        ({"monthly_budget_usd": Decimal("NaN")}, "monthly_budget_usd"),
        ({"budget_thresholds": ()}, "at least one"),
        ({"budget_thresholds": (0.8, 0.5)}, "strictly ascending"),
        ({"budget_thresholds": (0.5, 0.5)}, "strictly ascending"),
        ({"budget_thresholds": (0.5, 1.2)}, "must lie in"),
        ({"queue_length_floor": -1}, "queue_length_floor"),
    ],
)
def test_invalid_thresholds_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(THRESHOLDS, **change)


def rule(**change: Any) -> AlertRule:
    return replace(RULES["VaultSealed"], **change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "vault_sealed"}, "CamelCase"),
        ({"severity": "info"}, "severity must be"),
        ({"for_": "5 minutes"}, "Prometheus duration"),
        ({"for_": ""}, "Prometheus duration"),
        ({"action": " "}, "action is empty"),
        ({"labels": {"severity": "critical"}}, "set by the catalogue"),
        ({"labels": {"bad-name": "x"}}, "invalid label name"),
        ({"supersedes": ("RedisDown",)}, "supersedes needs supersedes_on"),
        ({"supersedes_on": ("instance",)}, "supersedes needs supersedes_on"),
    ],
)
def test_invalid_rules_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rule(**change)


def test_rule_is_frozen_and_hashable() -> None:
    labels = {"team": "a"}
    r = rule(labels=labels)
    labels["team"] = "b"
    assert r.labels == {"team": "a"}
    assert hash(r) == hash(rule(labels={"team": "a"}))
    with pytest.raises(TypeError):
        r.labels["team"] = "c"  # type: ignore[index]


def test_superseding_an_unknown_alert_is_refused() -> None:
    sealed = rule(supersedes=("VaultSlow",), supersedes_on=("instance",))
    with pytest.raises(ValueError, match=r"VaultSealed supersedes alerts not in .*VaultSlow"):
        render_rule_groups([RuleGroup("g", (sealed,))])


def test_critical_alerts_supersede_only_their_own_warnings() -> None:
    superseding = {r.name: (r.supersedes, r.supersedes_on) for r in RULES.values() if r.supersedes}
    assert superseding == {
        EMERGENCY_ALERT: (("AgentSuccessRateLow",), ("agent_type",)),
        **{
            budget_alert_name(share, window): (
                tuple(budget_alert_name(s, window) for s in (0.5, 0.8, 0.9) if s < share),
                ("scope", "window"),
            )
            for window in ("day", "month")
            for share in (0.8, 0.9, 1.0)
        },
    }


def test_duplicate_names_are_refused() -> None:
    group = RuleGroup("g", (RULES["RedisDown"], RULES["RedisDown"]))
    with pytest.raises(ValueError, match="RedisDown"):
        render_rule_groups([group])
