"""Names and labels of every Prometheus series the runtime exports: the one contract.

The services export these series, the alert catalogue and dashboards query them, and the
HPA's external metric reads one of them; nothing else spells a metric name.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AGENTS_HEALTHY",
    "AGENTS_REGISTERED",
    "AGENT_LAST_HEARTBEAT",
    "BUDGET_USD",
    "COST_USD",
    "EMERGENCY_MODE",
    "IN_FLIGHT",
    "LOAD_RATIO",
    "QUEUE_LENGTH",
    "REDIS_UP",
    "SPEND_USD",
    "TASKS",
    "TASK_DURATION",
    "TOKENS",
    "VAULT_UNSEALED",
]

PREFIX: Final = "agentops"

# Agent manager -------------------------------------------------------------------------
# counter; labels: agent_type, status (succeeded | failed | dead_lettered), endpoint
TASKS: Final = f"{PREFIX}_tasks_total"
# histogram (seconds, submit → completion); labels: agent_type
TASK_DURATION: Final = f"{PREFIX}_task_duration_seconds"
# gauge; labels: agent_type — tasks accepted and not yet started (the HPA signal)
QUEUE_LENGTH: Final = f"{PREFIX}_queue_length"
# gauge; labels: agent_type
IN_FLIGHT: Final = f"{PREFIX}_tasks_in_flight"
# gauge; labels: agent_type — in-flight / total capacity of healthy agents
LOAD_RATIO: Final = f"{PREFIX}_load_ratio"
# gauges; labels: agent_type
AGENTS_REGISTERED: Final = f"{PREFIX}_agents_registered"
AGENTS_HEALTHY: Final = f"{PREFIX}_agents_healthy"
# gauge (unix seconds); labels: agent_type, agent_id
AGENT_LAST_HEARTBEAT: Final = f"{PREFIX}_agent_last_heartbeat_timestamp_seconds"
# gauge 0/1
EMERGENCY_MODE: Final = f"{PREFIX}_emergency_mode"

# Cost engine ---------------------------------------------------------------------------
# counter; labels: agent_type, model, direction (input | output)
TOKENS: Final = f"{PREFIX}_tokens_total"
# counter (USD); labels: agent_type, model, team
COST_USD: Final = f"{PREFIX}_cost_usd_total"
# gauges (USD); labels: scope ("platform" or "team:<name>"), window (day | month)
SPEND_USD: Final = f"{PREFIX}_spend_usd"
BUDGET_USD: Final = f"{PREFIX}_budget_usd"

# Exported by the platform's dependencies -----------------------------------------------
REDIS_UP: Final = "redis_up"  # redis_exporter
VAULT_UNSEALED: Final = "vault_core_unsealed"  # Vault telemetry
