"""The worker's Prometheus series (names from contracts.telemetry.metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from contracts.telemetry import metrics as m
from runtime.service.series import Counter, Gauge, Histogram

__all__ = ["WorkerMetrics"]


class WorkerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.tasks = Counter(
            m.WORKER_TASKS, "Tasks this worker ran", ["agent_type", "status"], registry=r
        )
        self.duration = Histogram(
            m.WORKER_TASK_DURATION,
            "Seconds the handler ran",
            ["agent_type"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.in_flight = Gauge(
            m.WORKER_IN_FLIGHT, "Tasks this worker is running", ["agent_type"], registry=r
        )
        self.tokens = Counter(
            m.WORKER_TOKENS,
            "Tokens this worker's handlers spent",
            ["agent_type", "model", "direction"],
            registry=r,
        )
        self.tool_calls = Counter(
            m.WORKER_TOOL_CALLS,
            "MCP tool calls the model asked for, by outcome",
            ["agent_type", "team", "server", "tool", "outcome"],
            registry=r,
        )
        self.tool_call_duration = Histogram(
            m.WORKER_TOOL_CALL_DURATION,
            "Seconds an MCP tool call took",
            ["agent_type", "server", "tool"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
