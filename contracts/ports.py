"""Ports the runtime listens on: services, probes and the network policies read these."""

from __future__ import annotations

from typing import Final

__all__ = ["COST_ENGINE_HTTP", "MANAGER_HTTP", "POSTGRES", "REDIS", "WORKER_HTTP"]

MANAGER_HTTP: Final = 8080  # task API, agent API, /health, /ready, /metrics
COST_ENGINE_HTTP: Final = 8081  # usage, recommendation, reservations, /metrics
WORKER_HTTP: Final = 8082  # /health, /ready, /metrics of an agent worker
REDIS: Final = 6379
POSTGRES: Final = 5432  # the optional PostgreSQL database (RDS, or a local server)
