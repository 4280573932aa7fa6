"""The threshold rules as plain functions: each boundary, each status, figures taken from the
same sources the rules use (alert catalogue constants, stack config, DoctorSettings)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from contracts.config import load_from_mapping
from contracts.telemetry.alerts import (
    P95_LATENCY_SECONDS,
    SUCCESS_RATE_CRITICAL,
    SUCCESS_RATE_WARNING,
    alert_names,
    build_catalogue,
)
from infra.platform.alert_thresholds import alert_thresholds
from ops.diagnostics import DoctorSettings, Status, build_report, recommendations, worst
from ops.diagnostics.check import Check
from ops.diagnostics.platform import DEFAULT_DENY, ExpectedDeployment, expectations
from ops.diagnostics.rules.cost import (
    BUDGET_SPENT,
    budget_check,
    budget_config_check,
    projection_check,
)
from ops.diagnostics.rules.kubernetes import (
    DeploymentState,
    deployment_check,
    network_policy_check,
)
from ops.diagnostics.rules.prometheus import (
    FiringAlert,
    Target,
    alert_checks,
    http_error_rate_check,
    latency_check,
    success_rate_check,
    targets_check,
    throughput_check,
)
from ops.diagnostics.rules.redis import (
    QUEUE_SAFE_POLICY,
    MemoryGrowth,
    RedisMemory,
    days_left_check,
    eviction_check,
    memory_check,
)
from ops.diagnostics.rules.vault import SecretAge, seal_check, secret_age_check
from ops.diagnostics.thresholds import Bounds, at_or_above, below
from tests.stacks import stack_values

SETTINGS = DoctorSettings()
MANAGER = ExpectedDeployment("agentops-platform", "agent-manager", "agent-manager")
EPS = 1e-9


def _state(desired: int, available: int) -> DeploymentState:
    return DeploymentState(desired, available, available, desired, observed_latest=True)


# -- generic thresholds --------------------------------------------------------------------


def test_at_or_above_and_below_put_the_boundary_where_the_alerts_do() -> None:
    bounds = Bounds(0.8, 0.9)
    assert at_or_above(0.8 - EPS, bounds) is Status.HEALTHY
    assert at_or_above(0.8, bounds) is Status.WARNING
    assert at_or_above(0.9, bounds) is Status.CRITICAL
    low = Bounds(0.9, 0.8)
    assert below(0.9, low) is Status.HEALTHY
    assert below(0.9 - EPS, low) is Status.WARNING
    assert below(0.8 - EPS, low) is Status.CRITICAL
    assert at_or_above(1e9, Bounds(1.0)) is Status.WARNING  # warning-only rule


def test_thresholds_in_the_wrong_order_are_refused() -> None:
    with pytest.raises(ValueError, match="equal"):
        Bounds(0.5, 0.5)
    with pytest.raises(ValueError, match="below warning"):
        at_or_above(0.1, Bounds(0.9, 0.8))
    with pytest.raises(ValueError, match="above warning"):
        below(0.1, Bounds(0.8, 0.9))


def test_doctor_settings_defaults_env_and_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SETTINGS.http_error_rate_warning < SETTINGS.http_error_rate_critical
    monkeypatch.setenv("AGENTOPS_DOCTOR_QUERY_WINDOW", "30s")
    assert DoctorSettings().query_window == "30s"
    monkeypatch.setenv("AGENTOPS_DOCTOR_QUERY_WINDOW", "five minutes")
    with pytest.raises(ValidationError, match="Prometheus duration"):
        DoctorSettings()
    monkeypatch.delenv("AGENTOPS_DOCTOR_QUERY_WINDOW")
    with pytest.raises(ValidationError, match="redis_memory_critical must be above"):
        DoctorSettings(redis_memory_warning=0.9, redis_memory_critical=0.8)


# -- Kubernetes ----------------------------------------------------------------------------


def test_a_deployment_without_available_pods_is_never_healthy() -> None:
    assert deployment_check(MANAGER, None).status is Status.CRITICAL
    none_ready = deployment_check(MANAGER, _state(2, 0))
    assert (none_ready.status, none_ready.value) == (Status.CRITICAL, "0/2")
    assert "no available pod" in none_ready.detail and none_ready.advice
    assert deployment_check(MANAGER, _state(2, 1)).status is Status.WARNING
    assert deployment_check(MANAGER, _state(0, 0)).status is Status.WARNING
    healthy = deployment_check(MANAGER, _state(2, 2))
    assert (healthy.status, healthy.value, healthy.advice) == (Status.HEALTHY, "2/2", None)


def test_network_policies_default_deny_is_critical_others_warn() -> None:
    plan = (DEFAULT_DENY, "allow-dns", "allow-prometheus-scrape")
    assert network_policy_check("ns", plan, plan).status is Status.HEALTHY
    assert network_policy_check("ns", plan, [*plan, "extra"]).detail.endswith("extra")
    no_deny = network_policy_check("ns", plan, plan[1:])
    assert (no_deny.status, no_deny.value) == (Status.CRITICAL, "2/3")
    assert network_policy_check("ns", plan, []).status is Status.CRITICAL
    partial = network_policy_check("ns", plan, plan[:2])
    assert partial.status is Status.WARNING and "allow-prometheus-scrape" in partial.detail


# -- Redis ---------------------------------------------------------------------------------


def test_redis_memory_against_the_settings_thresholds() -> None:
    limit = 1000
    at = {
        Status.HEALTHY: int(limit * SETTINGS.redis_memory_warning) - 1,
        Status.WARNING: math.ceil(limit * SETTINGS.redis_memory_warning),
        Status.CRITICAL: math.ceil(limit * SETTINGS.redis_memory_critical),
    }
    for status, used in at.items():
        check = memory_check(RedisMemory(used, limit, QUEUE_SAFE_POLICY), SETTINGS)
        assert check.status is status, used
        assert check.value == round(used / limit, 4)
    unlimited = memory_check(RedisMemory(10, 0, QUEUE_SAFE_POLICY), SETTINGS)
    assert unlimited.status is Status.WARNING and "no maxmemory" in unlimited.detail


DAY_S = 86_400


def _growing(per_day: int, interval_s: float = 10) -> MemoryGrowth:
    """Growth of `per_day` bytes a day, seen over one sampling interval."""
    return MemoryGrowth(grown_bytes=round(per_day * interval_s / DAY_S), interval_s=interval_s)


def test_redis_days_left_at_each_boundary() -> None:
    warning, critical = SETTINGS.redis_days_left_warning, SETTINGS.redis_days_left_critical
    per_day = 2**30  # 1 GiB a day: the free memory is the days left, in GiB
    used = 10 * 2**30
    at = {  # days of headroom → status (below the threshold is worse, as the alerts compare)
        warning + 1: Status.HEALTHY,
        warning: Status.HEALTHY,
        warning - 0.5: Status.WARNING,
        critical: Status.WARNING,
        critical - 0.5: Status.CRITICAL,
        0: Status.CRITICAL,
    }
    for days, status in at.items():
        memory = RedisMemory(used, used + round(days * per_day), QUEUE_SAFE_POLICY)
        check = days_left_check(memory, _growing(per_day, interval_s=DAY_S), SETTINGS)
        assert check.name == "redis.memory_days_left"
        assert check.status is status, days
        assert check.value == pytest.approx(days, abs=0.01)
        assert (check.advice is None) == (status is Status.HEALTHY)
    full = days_left_check(
        RedisMemory(used + 5, used, QUEUE_SAFE_POLICY), _growing(per_day), SETTINGS
    )
    assert (full.status, full.value) == (Status.CRITICAL, 0)


def test_redis_not_growing_has_no_end_date() -> None:
    memory = RedisMemory(2**20, 2**21, QUEUE_SAFE_POLICY)
    for grown in (0, -4096, SETTINGS.redis_growth_noise_bytes):
        check = days_left_check(memory, MemoryGrowth(grown, 5), SETTINGS)
        assert (check.status, check.value) == (Status.HEALTHY, None), grown
        assert "not growing" in check.detail
    growing = days_left_check(
        memory, MemoryGrowth(SETTINGS.redis_growth_noise_bytes + 1, 5), SETTINGS
    )
    assert growing.status is Status.CRITICAL  # 1 MiB free at over 13 KB/s: minutes


def test_redis_without_maxmemory_is_unbounded_not_days_away() -> None:
    check = days_left_check(RedisMemory(2**30, 0, QUEUE_SAFE_POLICY), _growing(2**30), SETTINGS)
    assert (check.status, check.value) == (Status.WARNING, None)
    assert "unbounded" in check.detail and "1.0 GiB/day" in check.detail
    assert check.advice and "maxmemory" in check.advice


def test_days_left_thresholds_are_ordered() -> None:
    with pytest.raises(ValidationError, match="redis_days_left_critical"):
        DoctorSettings(redis_days_left_warning=3, redis_days_left_critical=3)


def test_only_noeviction_keeps_the_queue_safe() -> None:
    assert eviction_check(RedisMemory(1, 2, QUEUE_SAFE_POLICY)).status is Status.HEALTHY
    lru = eviction_check(RedisMemory(1, 2, "allkeys-lru"))
    assert (lru.status, lru.value) == (Status.CRITICAL, "allkeys-lru")


# -- Prometheus ----------------------------------------------------------------------------


def test_targets_a_job_with_nothing_up_is_critical() -> None:
    jobs = ("agent-manager", "agent-coder")
    up = [Target("agent-manager", "a:1", "up"), Target("agent-coder", "b:1", "up")]
    assert targets_check([*up, Target("other", "c:1", "down")], jobs).status is Status.HEALTHY
    down = targets_check([up[0], Target("agent-coder", "b:1", "down", "refused")], jobs)
    assert (down.status, down.value) == (Status.CRITICAL, "1/2 up")
    assert "refused" in down.detail
    partial = targets_check([*up, Target("agent-coder", "b:2", "down")], jobs)
    assert partial.status is Status.WARNING
    missing = targets_check(up[:1], jobs)
    assert missing.status is Status.WARNING and "agent-coder" in missing.detail
    assert targets_check([Target("other", "c:1", "up")], jobs).status is Status.CRITICAL


def test_success_rate_uses_the_catalogue_constants() -> None:
    def status(rate: float) -> Status:
        return success_rate_check({"coder": rate, "idle": math.nan}, "5m").status

    assert status(SUCCESS_RATE_WARNING) is Status.HEALTHY  # the alert fires strictly below
    assert status(SUCCESS_RATE_WARNING - EPS) is Status.WARNING
    assert status(SUCCESS_RATE_CRITICAL - EPS) is Status.CRITICAL
    idle = success_rate_check({"coder": math.nan}, "5m")
    assert (idle.status, idle.value) == (Status.HEALTHY, None)


def test_latency_and_error_rate_and_throughput() -> None:
    assert latency_check({"a": P95_LATENCY_SECONDS - EPS}, "5m").status is Status.HEALTHY
    slow = latency_check({"a": 1.0, "b": float(P95_LATENCY_SECONDS)}, "5m")
    assert (slow.status, slow.value) == (Status.WARNING, P95_LATENCY_SECONDS)
    errors = SETTINGS.http_error_rate_critical
    assert http_error_rate_check(errors, "5m", SETTINGS).status is Status.CRITICAL
    assert http_error_rate_check(0.0, "5m", SETTINGS).status is Status.HEALTHY
    assert http_error_rate_check(None, "5m", SETTINGS).value is None
    floor = 10
    assert throughput_check(0.0, floor + 1, floor, "5m").status is Status.CRITICAL
    assert throughput_check(0.0, floor, floor, "5m").status is Status.HEALTHY
    assert throughput_check(0.5, floor + 100, floor, "5m").status is Status.HEALTHY


def test_firing_alerts_carry_the_catalogue_action_and_the_playbook() -> None:
    catalogue = build_catalogue(alert_thresholds(load_from_mapping(stack_values("staging"))))
    actions = {r.name: r.action for g in catalogue for r in g.rules}
    firing = [
        FiringAlert("AgentLatencyP95High", "warning", {"agent_type": "coder"}, "slow"),
        FiringAlert("RedisDown", "critical", {}, "Redis is down"),
    ]
    summary, latency, redis = alert_checks(firing, actions)
    assert (summary.status, summary.value) == (Status.CRITICAL, 2)
    assert latency.status is Status.WARNING and redis.status is Status.CRITICAL
    assert latency.advice is not None and "coder agents" in latency.advice
    assert "docs/operations.md#agentlatencyp95high" in latency.advice
    assert alert_checks([], actions)[0].status is Status.HEALTHY


# -- Vault ---------------------------------------------------------------------------------


def test_seal_status() -> None:
    assert seal_check({"initialized": True, "sealed": False}).status is Status.HEALTHY
    assert seal_check({"initialized": True, "sealed": True}).value == "sealed"
    assert seal_check({"initialized": False, "sealed": True}).value == "uninitialized"
    assert seal_check({"initialized": True, "sealed": False, "standby": True}).detail.endswith(
        "standby"
    )


def test_secret_age_against_the_rotation_policy() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    max_age, notice = 90, 14

    def aged(*days: float) -> Check:
        ages = [SecretAge(f"agents/s{i}", now - timedelta(days=d)) for i, d in enumerate(days)]
        return secret_age_check(ages, max_age, notice, now)

    assert aged(1, max_age - notice - 1).status is Status.HEALTHY
    assert aged(1, max_age - notice).status is Status.WARNING
    overdue = aged(1, max_age + 1)
    assert (overdue.status, overdue.value) == (Status.CRITICAL, max_age + 1)
    assert overdue.advice is not None and "agents/s1" in overdue.advice
    assert secret_age_check([], max_age, notice, now).status is Status.HEALTHY
    no_notice = [SecretAge("agents/x", now - timedelta(days=max_age - 1))]
    assert secret_age_check(no_notice, max_age, 0, now).status is Status.HEALTHY


# -- cost ----------------------------------------------------------------------------------


def test_budget_warns_at_the_downgrade_share_and_is_critical_when_spent() -> None:
    cost = load_from_mapping(stack_values("staging")).cost
    budget = Decimal(cost.budget.monthly_usd)
    share = Decimal(str(cost.downgrade_at))
    below_downgrade = budget * share - Decimal("0.01")
    assert (
        budget_check("month", below_downgrade, budget, cost.downgrade_at).status is Status.HEALTHY
    )
    assert budget_check("month", budget * share, budget, cost.downgrade_at).status is (
        Status.WARNING
    )
    spent = budget_check("month", budget * Decimal(str(BUDGET_SPENT)), budget, cost.downgrade_at)
    assert spent.status is Status.CRITICAL and spent.advice
    assert budget_check("day", Decimal(1), Decimal(0), cost.downgrade_at).status is (
        Status.CRITICAL
    )
    assert projection_check(budget + 1, budget).status is Status.WARNING
    assert projection_check(budget, budget).status is Status.HEALTHY
    assert budget_config_check(budget, budget).status is Status.HEALTHY
    assert budget_config_check(budget + 1, budget).status is Status.WARNING


# -- report --------------------------------------------------------------------------------


def test_recommendations_come_from_failing_checks_critical_first_once_each() -> None:
    checks = [
        Check(name="a", status=Status.WARNING, value=1, threshold="t", advice="warn"),
        Check(name="b", status=Status.HEALTHY, value=1, threshold="t"),
        Check(name="c", status=Status.CRITICAL, value=1, threshold="t", advice="fix"),
        Check(name="c", status=Status.CRITICAL, value=1, threshold="t", advice="fix"),
    ]
    assert recommendations(checks) == ["[critical] c: fix", "[warning] a: warn"]
    report = build_report("staging", checks, ["redis (give --redis-url)"])
    assert (report.status, report.exit_code) == (Status.CRITICAL, 1)
    warned = build_report("staging", checks[:2], [])
    assert (warned.status, warned.exit_code) == (Status.WARNING, 0)
    assert worst([]) is Status.HEALTHY


def test_expectations_are_what_the_stack_renders() -> None:
    cfg = load_from_mapping(stack_values("staging"))
    expect = expectations(cfg)
    refs = {d.ref for d in expect.deployments}
    assert "agentops-platform/agent-manager-green" in refs  # staging runs a green track
    assert "agentops-agents/agent-code-generator" in refs
    assert "agent-manager-green" not in expect.scrape_jobs  # one Service for both tracks
    assert all(DEFAULT_DENY in names for names in expect.network_policies.values())
    assert set(expect.network_policies) == set(expect.namespaces)
    assert expect.secret_max_age_days == cfg.vault.secret_max_age_days
    assert set(expect.alert_actions) == set(alert_names(build_catalogue(alert_thresholds(cfg))))
