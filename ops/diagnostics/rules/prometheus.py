"""Prometheus: it is ready, the runtime's targets are up, the golden signals and the alerts.

Success rate and p95 latency are judged by the alert catalogue's own constants, so the doctor
calls unhealthy exactly what would page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from contracts.telemetry.alerts import (
    P95_LATENCY_SECONDS,
    SUCCESS_RATE_CRITICAL,
    SUCCESS_RATE_WARNING,
)
from ops.diagnostics.check import Check, Status, worst
from ops.diagnostics.rules.common import RUNBOOK
from ops.diagnostics.settings import DoctorSettings
from ops.diagnostics.thresholds import Bounds, at_or_above, below

__all__ = [
    "FiringAlert",
    "Target",
    "alert_checks",
    "http_error_rate_check",
    "latency_check",
    "playbook_anchor",
    "ready_check",
    "success_rate_check",
    "targets_check",
    "throughput_check",
]

_LABEL = re.compile(r"\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Target:
    """An active scrape target (`/api/v1/targets`)."""

    job: str
    instance: str
    health: str  # up | down | unknown (not scraped yet)
    last_error: str = ""


@dataclass(frozen=True)
class FiringAlert:
    """An alert in state firing (`/api/v1/alerts`)."""

    name: str
    severity: str
    labels: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""


def playbook_anchor(alert: str) -> str:
    """The runbook section of an alert: a `### <AlertName>` heading's Markdown anchor."""
    return f"{RUNBOOK}#{alert.lower()}"


def ready_check(version: str) -> Check:
    return Check(
        name="prometheus.ready",
        status=Status.HEALTHY,
        value=version,
        threshold="/-/ready answers 200",
    )


def targets_check(targets: Iterable[Target], jobs: Sequence[str]) -> Check:
    """The runtime's targets: a job with no target up is critical, a down target a warning."""
    ours = [t for t in targets if t.job in jobs]
    up = [t for t in ours if t.health == "up"]
    threshold = f"every target of the jobs {', '.join(jobs)} up"
    value = f"{len(up)}/{len(ours)} up"
    if not ours:
        return Check(
            name="prometheus.targets",
            status=Status.CRITICAL,
            value=value,
            threshold=threshold,
            detail="Prometheus scrapes no target of the platform",
            advice=(
                "Check the ServiceMonitor agentops-runtime (namespace selector, labels) and that "
                "the runtime Services exist."
            ),
        )
    jobs_down = sorted({t.job for t in ours} - {t.job for t in up})
    missing = [j for j in jobs if j not in {t.job for t in ours}]
    down = [t for t in ours if t.health != "up"]
    notes = [f"{t.job} {t.instance} {t.health}: {t.last_error or 'not scraped yet'}" for t in down]
    if missing:
        notes.append(f"not scraped at all: {', '.join(missing)}")
    if jobs_down:
        status = Status.CRITICAL
    elif down or missing:
        status = Status.WARNING
    else:
        status = Status.HEALTHY
    return Check(
        name="prometheus.targets",
        status=status,
        value=value,
        threshold=threshold,
        detail="; ".join(notes),
        advice=None
        if status is Status.HEALTHY
        else (
            f"Every target of {', '.join(jobs_down)} is down: those pods are gone or not "
            "serving /metrics; check them first."
            if jobs_down
            else "Some targets are down or missing: check those pods and the ServiceMonitor."
        ),
    )


def _finite(values: Mapping[str, float]) -> dict[str, float]:
    # 0/0 over an idle window is NaN: no traffic is not a failure.
    return {k: v for k, v in values.items() if not math.isnan(v)}


def _per_type(values: Mapping[str, float], fmt: str) -> str:
    return ", ".join(f"{k}: {format(v, fmt)}" for k, v in sorted(values.items()))


def success_rate_check(rates: Mapping[str, float], window: str) -> Check:
    bounds = Bounds(SUCCESS_RATE_WARNING, SUCCESS_RATE_CRITICAL)
    threshold = f"≥ {bounds.warning:.0%} per agent type (critical < {SUCCESS_RATE_CRITICAL:.0%})"
    seen = _finite(rates)
    if not seen:
        return Check(
            name="prometheus.task_success_rate",
            status=Status.HEALTHY,
            value=None,
            threshold=threshold,
            detail=f"no task completed in the last {window}",
        )
    lowest = min(seen, key=lambda k: seen[k])
    status = below(seen[lowest], bounds)
    return Check(
        name="prometheus.task_success_rate",
        status=status,
        value=round(seen[lowest], 4),
        threshold=threshold,
        detail=f"over {window}: {_per_type(seen, '.1%')}",
        advice=None
        if status is Status.HEALTHY
        else (
            f"{lowest} tasks fail: read the failed tasks' errors (model provider, tool "
            f"timeouts) and the workers' logs; {playbook_anchor('AgentSuccessRateLow')}."
        ),
    )


def http_error_rate_check(rate: float | None, window: str, settings: DoctorSettings) -> Check:
    bounds = Bounds(settings.http_error_rate_warning, settings.http_error_rate_critical)
    threshold = f"5xx share < {bounds.warning:.1%} (critical ≥ {bounds.critical:.1%})"
    if rate is None or math.isnan(rate):
        return Check(
            name="prometheus.http_error_rate",
            status=Status.HEALTHY,
            value=None,
            threshold=threshold,
            detail=f"no HTTP request in the last {window}",
        )
    status = at_or_above(rate, bounds)
    return Check(
        name="prometheus.http_error_rate",
        status=status,
        value=round(rate, 4),
        threshold=threshold,
        detail=f"share of the runtime's HTTP answers with a 5xx code over {window}",
        advice=None
        if status is Status.HEALTHY
        else "Find the failing endpoint (Grafana: Agent platform overview) and the service's "
        "logs; a dependency (Redis, cost engine, Vault) is the usual cause.",
    )


def latency_check(p95: Mapping[str, float], window: str) -> Check:
    # The catalogue's latency alert is a warning: slow is degraded, not down.
    bounds = Bounds(P95_LATENCY_SECONDS)
    threshold = f"p95 task duration < {P95_LATENCY_SECONDS} s per agent type"
    seen = _finite(p95)
    if not seen:
        return Check(
            name="prometheus.task_latency_p95",
            status=Status.HEALTHY,
            value=None,
            threshold=threshold,
            detail=f"no task completed in the last {window}",
        )
    slowest = max(seen, key=lambda k: seen[k])
    status = at_or_above(seen[slowest], bounds)
    return Check(
        name="prometheus.task_latency_p95",
        status=status,
        value=round(seen[slowest], 3),
        threshold=threshold,
        detail=f"submit to completion over {window}: {_per_type(seen, '.2f')} s",
        advice=None
        if status is Status.HEALTHY
        else f"Scale up the {slowest} agents or move them to a faster model; "
        f"{playbook_anchor('AgentLatencyP95High')}.",
    )


def throughput_check(
    tasks_per_second: float | None, queued: float | None, floor: int, window: str
) -> Check:
    """Tasks completed per second; critical when work waits above the alert floor and none
    completes."""
    rate = 0.0 if tasks_per_second is None or math.isnan(tasks_per_second) else tasks_per_second
    waiting = 0.0 if queued is None or math.isnan(queued) else queued
    threshold = f"> 0 tasks/s while more than {floor} tasks wait"
    stuck = waiting > floor and rate == 0
    return Check(
        name="prometheus.throughput",
        status=Status.CRITICAL if stuck else Status.HEALTHY,
        value=round(rate, 4),
        threshold=threshold,
        detail=f"tasks/s completed over {window}; {waiting:.0f} waiting in the largest queue",
        advice=(
            "Tasks wait and none completes: check the agents are registered and healthy "
            f"(`agentops doctor`, Grafana fleet dashboard); {playbook_anchor('NoHealthyAgents')}."
        )
        if stuck
        else None,
    )


def _fill(template: str, labels: Mapping[str, str]) -> str:
    return _LABEL.sub(lambda m: labels.get(m.group(1), m.group(0)), template)


def alert_checks(firing: Sequence[FiringAlert], actions: Mapping[str, str]) -> list[Check]:
    """One check per firing alert (advice: the catalogue's action and the playbook), and a
    summary check. A firing alert outside the catalogue counts by its severity label."""
    checks = []
    for alert in sorted(firing, key=lambda a: (a.name, sorted(a.labels.items()))):
        status = Status.CRITICAL if alert.severity == "critical" else Status.WARNING
        labels = {k: v for k, v in alert.labels.items() if k not in ("alertname", "severity")}
        action = actions.get(alert.name)
        advice = _fill(action, alert.labels) if action else "Not in the platform's catalogue."
        checks.append(
            Check(
                name=f"alert/{alert.name}",
                status=status,
                value=alert.severity,
                threshold="not firing",
                detail="; ".join(
                    x
                    for x in (
                        alert.summary,
                        ", ".join(f"{k}={v}" for k, v in sorted(labels.items())),
                    )
                    if x
                ),
                advice=f"{advice} Playbook: {playbook_anchor(alert.name)}.",
            )
        )
    summary_status = worst(checks)
    return [
        Check(
            name="prometheus.alerts",
            status=summary_status,
            value=len(checks),
            threshold="no alert firing",
            detail=", ".join(sorted({c.name.removeprefix("alert/") for c in checks})),
        ),
        *checks,
    ]
