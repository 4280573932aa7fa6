"""Prometheus probe: readiness, active targets, the golden-signal queries, firing alerts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ops.diagnostics import promql
from ops.diagnostics.check import Check, Status
from ops.diagnostics.platform import PlatformExpectations
from ops.diagnostics.probes.errors import describe
from ops.diagnostics.rules import unreachable
from ops.diagnostics.rules.prometheus import (
    FiringAlert,
    Target,
    alert_checks,
    http_error_rate_check,
    latency_check,
    ready_check,
    success_rate_check,
    targets_check,
    throughput_check,
)
from ops.diagnostics.settings import DoctorSettings

__all__ = ["PrometheusQueryError", "prometheus_checks"]


class PrometheusQueryError(Exception):
    """Prometheus refused a query or answered something that is not a vector."""


def _data(client: httpx.Client, path: str, **params: str) -> Any:
    response = client.get(path, params=params)
    body = response.json()
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusQueryError(
            f"{path} answered {response.status_code}: {body.get('error', response.text)}"
        )
    return body["data"]


def _vector(client: httpx.Client, query: str, by: str | None = None) -> dict[str, float]:
    """An instant query's samples keyed by the label `by` ("" for an unlabelled result)."""
    data = _data(client, "/api/v1/query", query=query)
    if data.get("resultType") != "vector":
        raise PrometheusQueryError(f"{query}: a {data.get('resultType')}, not a vector")
    return {
        (sample["metric"].get(by, "") if by else ""): float(sample["value"][1])
        for sample in data["result"]
    }


def _scalar(samples: Mapping[str, float]) -> float | None:
    return samples.get("")


def _targets(client: httpx.Client) -> list[Target]:
    data = _data(client, "/api/v1/targets", state="active")
    return [
        Target(
            job=str(t["labels"].get("job", "")),
            instance=str(t["labels"].get("instance", "")),
            health=str(t.get("health", "unknown")),
            last_error=str(t.get("lastError", "")),
        )
        for t in data.get("activeTargets", [])
    ]


def _firing(client: httpx.Client) -> list[FiringAlert]:
    data = _data(client, "/api/v1/alerts")
    return [
        FiringAlert(
            name=str(a["labels"].get("alertname", "")),
            severity=str(a["labels"].get("severity", "")),
            labels=dict(a["labels"]),
            summary=str(a.get("annotations", {}).get("summary", "")),
        )
        for a in data.get("alerts", [])
        if a.get("state") == "firing"
    ]


def _failed(name: str, what: str, err: Exception) -> Check:
    return Check(
        name=name,
        status=Status.CRITICAL,
        value=None,
        threshold=f"{what} answers",
        detail=describe(err),
        advice="Check Prometheus' logs; a refused query names the problem.",
    )


def prometheus_checks(
    url: str, expect: PlatformExpectations, settings: DoctorSettings
) -> list[Check]:
    window = settings.query_window
    with httpx.Client(base_url=url.rstrip("/"), timeout=settings.timeout_s) as client:
        try:
            ready = client.get("/-/ready")
            if ready.status_code != 200:
                raise PrometheusQueryError(f"/-/ready answered {ready.status_code}: {ready.text}")
            version = str(_data(client, "/api/v1/status/buildinfo").get("version", ""))
        except (httpx.HTTPError, PrometheusQueryError, ValueError) as err:
            return [
                unreachable(
                    "prometheus.ready",
                    "Prometheus",
                    describe(err),
                    "Check the Prometheus pod (monitoring namespace) and its volume.",
                )
            ]
        checks = [ready_check(version)]
        measures: tuple[tuple[str, Callable[[], Check]], ...] = (
            ("prometheus.targets", lambda: targets_check(_targets(client), expect.scrape_jobs)),
            (
                "prometheus.task_success_rate",
                lambda: success_rate_check(
                    _vector(client, promql.success_rate(window), "agent_type"), window
                ),
            ),
            (
                "prometheus.http_error_rate",
                lambda: http_error_rate_check(
                    _scalar(_vector(client, promql.http_error_rate(window))), window, settings
                ),
            ),
            (
                "prometheus.task_latency_p95",
                lambda: latency_check(
                    _vector(client, promql.task_latency_p95(window), "agent_type"), window
                ),
            ),
            (
                "prometheus.throughput",
                lambda: throughput_check(
                    _scalar(_vector(client, promql.throughput(window))),
                    _scalar(_vector(client, promql.max_queue_length())),
                    expect.queue_length_floor,
                    window,
                ),
            ),
        )
        for name, measure in measures:
            try:
                checks.append(measure())
            except (httpx.HTTPError, PrometheusQueryError, ValueError, KeyError) as err:
                checks.append(_failed(name, "the query", err))
        try:
            checks += alert_checks(_firing(client), expect.alert_actions)
        except (httpx.HTTPError, PrometheusQueryError, ValueError, KeyError) as err:
            checks.append(_failed("prometheus.alerts", "/api/v1/alerts", err))
    return checks
