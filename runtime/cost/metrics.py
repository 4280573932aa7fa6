"""The cost engine's Prometheus series; names and labels from contracts.telemetry.metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from contracts.telemetry import metrics as m
from runtime.service.series import Counter, Gauge

__all__ = ["CostMetrics"]


class CostMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Counter(
            m.TOKENS, "Tokens used", ["agent_type", "model", "direction"], registry=registry
        )
        self.cost = Counter(
            m.COST_USD, "Spend in USD", ["agent_type", "model", "team"], registry=registry
        )
        # Shared-state gauges: every replica exports the same ledger figure (queries use max).
        self.spend = Gauge(
            m.SPEND_USD, "Spend so far in the window, USD", ["scope", "window"], registry=registry
        )
        self.budget = Gauge(
            m.BUDGET_USD,
            "Configured budget of the window, USD",
            ["scope", "window"],
            registry=registry,
        )
        self.alerts = Counter(
            m.BUDGET_ALERTS,
            "Budget thresholds crossed (once per threshold and window, platform-wide)",
            ["scope", "window", "threshold"],
            registry=registry,
        )
        self.downgrades = Counter(
            m.DOWNGRADES,
            "Calls downgraded to a cheaper model",
            ["requested", "chosen", "scope"],
            registry=registry,
        )
        self.rate_limited = Counter(
            m.RATE_LIMITED,
            "Calls refused by an hourly limit",
            ["scope", "dimension"],
            registry=registry,
        )
        self.reservations = Counter(
            m.RESERVATIONS, "Check-and-reserve outcomes", ["outcome"], registry=registry
        )
