"""HTTP paths the platform relies on: probes, scraping and Alertmanager's webhook."""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGENTS_API",
    "ALERT_WEBHOOK",
    "COST_API",
    "HEALTH",
    "METRICS",
    "READY",
    "TASKS_API",
]

HEALTH: Final = "/health"  # liveness: the process serves requests
READY: Final = "/ready"  # readiness: its dependencies (Redis, ...) answer
METRICS: Final = "/metrics"
# The manager's Alertmanager receiver (emergency mode on the critical success-rate alert).
ALERT_WEBHOOK: Final = "/api/v1/alerts"
# The manager's task API (reached through the ingress gateway) and agent API (workers).
TASKS_API: Final = "/api/v1/tasks"
AGENTS_API: Final = "/api/v1/agents"
# The cost engine's API, called by the manager and the workers.
COST_API: Final = "/api/v1"
# No worker endpoint takes tasks: the manager appends each task to the agent's inbox stream in
# Redis and the worker reads it from there (runtime/manager/queue.py, runtime/worker/runner.py).
