"""HTTP paths the platform relies on: probes, scraping and Alertmanager's webhook."""

from __future__ import annotations

from typing import Final

__all__ = ["ALERT_WEBHOOK", "HEALTH", "METRICS", "READY"]

HEALTH: Final = "/health"  # liveness: the process serves requests
READY: Final = "/ready"  # readiness: its dependencies (Redis, ...) answer
METRICS: Final = "/metrics"
# The manager's Alertmanager receiver (emergency mode on the critical success-rate alert).
ALERT_WEBHOOK: Final = "/api/v1/alerts"
