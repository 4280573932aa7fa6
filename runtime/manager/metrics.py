"""The manager's Prometheus series (names from contracts.telemetry.metrics, the one contract)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry

from contracts.telemetry import metrics as m
from runtime.manager.registry import AgentRecord
from runtime.service.series import Counter, Gauge, Histogram

__all__ = ["ManagerMetrics"]

# Task latencies run from milliseconds (no-op work) to many minutes (LLM chains).
_TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# Completions per agent type the success-rate gauge looks back on.
SUCCESS_WINDOW = 200


class ManagerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.tasks = Counter(m.TASKS, "Tasks finished", ["agent_type", "status"], registry=r)
        self.submissions = Counter(
            m.SUBMISSIONS, "Task submissions", ["agent_type", "outcome"], registry=r
        )
        self.retries = Counter(
            m.RETRIES, "Tasks given back for another attempt", ["agent_type", "outcome"], registry=r
        )
        self.duration = Histogram(
            m.TASK_DURATION,
            "Seconds from submission to completion",
            ["agent_type"],
            buckets=_TASK_BUCKETS,
            registry=r,
        )
        self.wait = Histogram(
            m.TASK_WAIT,
            "Seconds from submission until an agent starts the task",
            ["agent_type"],
            buckets=_TASK_BUCKETS,
            registry=r,
        )
        self.success_rate = Gauge(
            m.SUCCESS_RATE,
            f"Share of the last {SUCCESS_WINDOW} completions that succeeded",
            ["agent_type"],
            registry=r,
        )
        self.queue_length = Gauge(
            m.QUEUE_LENGTH, "Tasks accepted and not yet started", ["agent_type"], registry=r
        )
        self.in_flight = Gauge(
            m.IN_FLIGHT, "Tasks assigned to agents and not finished", ["agent_type"], registry=r
        )
        self.load_ratio = Gauge(
            m.LOAD_RATIO, "In-flight tasks / capacity of healthy agents", ["agent_type"], registry=r
        )
        self.registered = Gauge(
            m.AGENTS_REGISTERED, "Registered agents", ["agent_type"], registry=r
        )
        self.healthy = Gauge(m.AGENTS_HEALTHY, "Healthy agents", ["agent_type"], registry=r)
        self.heartbeat = Gauge(
            m.AGENT_LAST_HEARTBEAT,
            "Unix time of the agent's last heartbeat",
            ["agent_type", "agent_id"],
            registry=r,
        )
        self.tokens = Counter(
            m.TASK_TOKENS,
            "Tokens spent by finished tasks, as reported by their agents",
            ["agent_type", "model", "direction"],
            registry=r,
        )
        self.emergency = Gauge(
            m.EMERGENCY_MODE, "1 while only high-priority tasks are admitted", registry=r
        )
        self.abandoned = Counter(
            m.ABANDONED,
            "Attempts reclaimed mid-work from silent or gone agents (their work may run twice)",
            ["agent_type"],
            registry=r,
        )
        self.dead_letters = Gauge(m.DEAD_LETTERS, "Entries in the dead-letter stream", registry=r)
        self.dead_letter_cap = Gauge(
            m.DEAD_LETTER_CAP, "Dead-letter entries kept before the oldest are trimmed", registry=r
        )
        self._outcomes: dict[str, deque[bool]] = {}

    def finished(
        self, agent_type: str, status: str, duration_s: float, usage: list[dict[str, Any]]
    ) -> None:
        for u in usage:
            self.tokens.labels(agent_type, u["model"], "input").inc(int(u["input"]))
            self.tokens.labels(agent_type, u["model"], "output").inc(int(u["output"]))
        self.tasks.labels(agent_type, status).inc()
        self.duration.labels(agent_type).observe(duration_s)
        window = self._outcomes.setdefault(agent_type, deque(maxlen=SUCCESS_WINDOW))
        window.append(status == "succeeded")
        self.success_rate.labels(agent_type).set(sum(window) / len(window))

    def registry_view(
        self, agent_types: Iterable[str], agents: list[AgentRecord], queued: dict[str, int]
    ) -> None:
        """Per-type gauges from one registry snapshot (the HPA's and the alerts' signals)."""
        for agent_type in agent_types:
            mine = [a for a in agents if a.profile.agent_type == agent_type]
            healthy = [a for a in mine if a.healthy]
            in_flight = sum(max(0, a.load) for a in mine)
            capacity = sum(a.profile.capacity for a in healthy if not a.draining)
            self.queue_length.labels(agent_type).set(queued.get(agent_type, 0))
            self.in_flight.labels(agent_type).set(in_flight)
            self.load_ratio.labels(agent_type).set(in_flight / capacity if capacity else 0)
            self.registered.labels(agent_type).set(len(mine))
            self.healthy.labels(agent_type).set(len(healthy))
        # Only current agents: a deregistered agent's series goes, rather than alerting forever.
        self.heartbeat.clear()
        for a in agents:
            if a.last_heartbeat is not None:
                self.heartbeat.labels(a.profile.agent_type, a.profile.agent_id).set(
                    a.last_heartbeat
                )
