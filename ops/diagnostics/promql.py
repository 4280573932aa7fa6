"""The PromQL the doctor asks Prometheus, built from the telemetry contract.

Series names come from `contracts.telemetry.metrics` and the success rate from
`contracts.telemetry.queries`, the expression the alert catalogue fires on; the p95 is the
catalogue's latency expression without its comparison. Pure.
"""

from __future__ import annotations

from contracts.telemetry import metrics as m
from contracts.telemetry.queries import success_rate

__all__ = ["http_error_rate", "max_queue_length", "success_rate", "task_latency_p95", "throughput"]


def http_error_rate(window: str) -> str:
    """Share of the runtime's HTTP answers that are 5xx; no 5xx series at all reads as 0."""
    total = f"sum(rate({m.HTTP_REQUESTS}[{window}]))"
    errors = f'sum(rate({m.HTTP_REQUESTS}{{code=~"5.."}}[{window}]))'
    return f"({errors} or {total} * 0) / {total}"


def task_latency_p95(window: str) -> str:
    return (
        "histogram_quantile(0.95, sum by (agent_type, le) "
        f"(rate({m.TASK_DURATION}_bucket[{window}])))"
    )


def throughput(window: str) -> str:
    """Tasks completed per second (succeeded, failed or dead-lettered) across the platform."""
    return f"sum(rate({m.TASKS}[{window}]))"


def max_queue_length() -> str:
    # max: every manager replica exports the same shared queue gauge (as the alerts read it).
    return f"max({m.QUEUE_LENGTH})"
