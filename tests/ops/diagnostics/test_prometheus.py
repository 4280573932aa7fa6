"""The Prometheus probe against a real Prometheus scraping the real runtime processes:
healthy traffic, failing tasks, a stopped worker (its target down), the alert catalogue's
firing alerts, and Prometheus itself gone."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path
from typing import Any

from contracts.config import load_from_mapping
from contracts.telemetry import metrics as m
from contracts.telemetry.alerts import SUCCESS_RATE_CRITICAL, build_catalogue, render_rule_groups
from infra.platform.alert_thresholds import alert_thresholds
from ops.diagnostics import Check, DoctorSettings, Status
from ops.diagnostics.platform import expectations
from ops.diagnostics.probes.prometheus import prometheus_checks
from tests.ops.diagnostics.prometheus import PrometheusServer, prometheus_server
from tests.ops.diagnostics.runtime import LocalRuntime, local_runtime
from tests.ops.diagnostics.windows import QUERY_WINDOW
from tests.stacks import stack_values
from tests.waiting import eventually

CFG = load_from_mapping(stack_values("local"))
EXPECT = expectations(CFG)


def _traffic(rt: LocalRuntime, prom: PrometheusServer, payload: dict[str, Any]) -> bool | None:
    """Submits a task; True once Prometheus sees tasks completing."""
    rt.submit(payload)
    return True if prom.query(f"sum(rate({m.TASKS}[{QUERY_WINDOW}])) > 0") else None


def _checks(url: str, settings: DoctorSettings) -> dict[str, Check]:
    return {c.name: c for c in prometheus_checks(url, EXPECT, settings)}


def test_a_platform_at_work_is_healthy(tmp_path: Path, settings: DoctorSettings) -> None:
    with (
        local_runtime(tmp_path, CFG) as rt,
        prometheus_server(tmp_path / "prometheus", rt.scrape()) as prom,
    ):
        # Traffic across several scrapes: a counter first seen at its final value has no rate.
        eventually("completed tasks in Prometheus", lambda: _traffic(rt, prom, {}))
        checks = _checks(prom.url, settings)
    statuses = {name: c.status for name, c in checks.items()}
    assert set(statuses.values()) == {Status.HEALTHY}, checks
    assert checks["prometheus.targets"].value == "3/3 up"
    assert checks["prometheus.task_success_rate"].value == 1.0
    assert checks["prometheus.http_error_rate"].value == 0.0
    latency = checks["prometheus.task_latency_p95"].value
    assert isinstance(latency, float) and latency > 0
    throughput = checks["prometheus.throughput"].value
    assert isinstance(throughput, float) and throughput > 0
    assert checks["prometheus.alerts"].value == 0


def test_failing_tasks_a_stopped_worker_and_firing_alerts_are_reported(
    tmp_path: Path, settings: DoctorSettings
) -> None:
    # The real catalogue of the stack, each rule firing as soon as its expression holds.
    thresholds = dataclasses.replace(
        alert_thresholds(CFG), pending_override="0s", success_window=QUERY_WINDOW
    )
    rules = render_rule_groups(build_catalogue(thresholds))
    with (
        local_runtime(tmp_path, CFG) as rt,
        prometheus_server(tmp_path / "prometheus", rt.scrape(), rules) as prom,
    ):
        eventually("failed tasks in Prometheus", lambda: _traffic(rt, prom, {"fail": True}))
        failing = eventually(
            "a critical success rate",
            lambda: (
                c
                if (c := _checks(prom.url, settings))["prometheus.task_success_rate"].status
                is Status.CRITICAL
                else None
            ),
        )
        rate = failing["prometheus.task_success_rate"]
        assert isinstance(rate.value, float) and rate.value < SUCCESS_RATE_CRITICAL
        assert rate.advice and rt.pool in rate.advice
        # RedisDown: no redis_exporter is scraped here, and the catalogue pages on that too.
        redis_down = failing["alert/RedisDown"]
        assert redis_down.status is Status.CRITICAL
        assert redis_down.advice and "docs/operations.md#redisdown" in redis_down.advice
        assert failing["prometheus.alerts"].status is Status.CRITICAL
        assert "alert/PlatformBudgetMismatchMonthly" not in failing  # the engine exports it

        rt.worker.stop(signal.SIGKILL)
        down = eventually(
            "the worker's target down",
            lambda: (
                c
                if (c := _checks(prom.url, settings))["prometheus.targets"].status
                is Status.CRITICAL
                else None
            ),
        )
        targets = down["prometheus.targets"]
        assert targets.value == "2/3 up"
        assert f"agent-{rt.pool}" in targets.detail
    gone = {c.name: c for c in prometheus_checks(prom.url, EXPECT, settings)}
    assert list(gone) == ["prometheus.ready"]
    assert gone["prometheus.ready"].status is Status.CRITICAL
    assert "Connection refused" in gone["prometheus.ready"].detail
