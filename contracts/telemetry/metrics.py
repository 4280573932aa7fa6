"""Names and labels of every Prometheus series the runtime exports: the one contract.

The services export these series, the alert catalogue and dashboards query them, and the
HPA's external metric reads one of them; nothing else spells a metric name.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ABANDONED",
    "AGENTS_HEALTHY",
    "AGENTS_REGISTERED",
    "AGENT_LAST_HEARTBEAT",
    "BUDGET_ALERTS",
    "BUDGET_USD",
    "COST_USD",
    "DEAD_LETTERS",
    "DEAD_LETTER_CAP",
    "DOWNGRADES",
    "EMERGENCY_MODE",
    "HISTOGRAMS",
    "HTTP_DURATION",
    "HTTP_REQUESTS",
    "IN_FLIGHT",
    "LOAD_RATIO",
    "QUEUE_LENGTH",
    "RATE_LIMITED",
    "REDIS_UP",
    "RESERVATIONS",
    "RETRIES",
    "SPEND_USD",
    "SUBMISSIONS",
    "SUCCESS_RATE",
    "TASKS",
    "TASK_DURATION",
    "TASK_TOKENS",
    "TASK_WAIT",
    "TOKENS",
    "TOKEN_FILE_OK",
    "VAULT_UNSEALED",
    "WORKER_IN_FLIGHT",
    "WORKER_TASKS",
    "WORKER_TASK_DURATION",
    "WORKER_TOKENS",
    "WORKER_TOOL_CALLS",
    "WORKER_TOOL_CALL_DURATION",
]

PREFIX: Final = "agentops"

# Agent manager -------------------------------------------------------------------------
# counter; labels: agent_type, status (succeeded | failed | dead_lettered)
TASKS: Final = f"{PREFIX}_tasks_total"
# counter; labels: agent_type, outcome (accepted | duplicate | rejected_full |
# rejected_emergency)
SUBMISSIONS: Final = f"{PREFIX}_task_submissions_total"
# histogram (seconds, submit → an agent starts it); labels: agent_type
TASK_WAIT: Final = f"{PREFIX}_task_wait_seconds"
# counter; labels: agent_type, outcome (retry | dead) — reclaimed from silent agents or failed
RETRIES: Final = f"{PREFIX}_task_retries_total"
# counter; labels: agent_type, model, direction (input | output) — reported by finished tasks
TASK_TOKENS: Final = f"{PREFIX}_task_tokens_total"
# gauge 0..1; labels: agent_type — share of the last completions that succeeded
SUCCESS_RATE: Final = f"{PREFIX}_success_rate"
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
# counter; labels: agent_type — attempts reclaimed mid-work from a silent or gone agent: the
# only way one task's work runs (and may be paid for) twice
ABANDONED: Final = f"{PREFIX}_tasks_abandoned_total"
# gauges: entries in the dead-letter stream, and the cap past which the oldest are trimmed
DEAD_LETTERS: Final = f"{PREFIX}_dead_letters"
DEAD_LETTER_CAP: Final = f"{PREFIX}_dead_letter_cap"

# Agent worker ----------------------------------------------------------------------------
# counter; labels: agent_type, status (succeeded | failed | retried | deferred | lost |
# refinished: completed from a stored outcome | usage_refused: a usage record refused for good)
WORKER_TASKS: Final = f"{PREFIX}_worker_tasks_total"
# histogram (seconds the handler ran); labels: agent_type
WORKER_TASK_DURATION: Final = f"{PREFIX}_worker_task_duration_seconds"
# gauge; labels: agent_type
WORKER_IN_FLIGHT: Final = f"{PREFIX}_worker_tasks_in_flight"
# counter; labels: agent_type, model, direction
WORKER_TOKENS: Final = f"{PREFIX}_worker_tokens_total"
# counter; labels: agent_type, team, server, tool, outcome (ok | error | timeout | unreachable |
# refused: the pool may not use the tool, no request left the worker | over_limit: the task's or
# the team's limit of calls)
WORKER_TOOL_CALLS: Final = f"{PREFIX}_worker_tool_calls_total"
# histogram (seconds a tool call took, a refusal included); labels: agent_type, server, tool
WORKER_TOOL_CALL_DURATION: Final = f"{PREFIX}_worker_tool_call_duration_seconds"

# Every HTTP service ---------------------------------------------------------------------
# counter; labels: endpoint (route template), method, code
HTTP_REQUESTS: Final = f"{PREFIX}_http_requests_total"
# histogram (seconds); labels: endpoint, method
HTTP_DURATION: Final = f"{PREFIX}_http_request_duration_seconds"
# gauge 0/1; labels: realm — 0 while a bearer-token file cannot be re-read (the service keeps
# its last good tokens and is unready)
TOKEN_FILE_OK: Final = f"{PREFIX}_token_file_ok"

# Cost engine ---------------------------------------------------------------------------
# counter; labels: agent_type, model, direction (input | output)
TOKENS: Final = f"{PREFIX}_tokens_total"
# counter (USD); labels: agent_type, model, team
COST_USD: Final = f"{PREFIX}_cost_usd_total"
# gauges (USD); labels: scope ("platform" or "team:<name>"), window (day | month)
SPEND_USD: Final = f"{PREFIX}_spend_usd"
BUDGET_USD: Final = f"{PREFIX}_budget_usd"
# counter; labels: scope, window, threshold (the share, e.g. "0.8") — one increment per
# threshold crossed per window across all replicas (the engine marks it once in Redis)
BUDGET_ALERTS: Final = f"{PREFIX}_budget_alerts_total"
# counter; labels: requested, chosen, scope — a reservation or recommendation downgraded
DOWNGRADES: Final = f"{PREFIX}_model_downgrades_total"
# counter; labels: scope, dimension (requests | tokens | cost) — calls refused with 429
RATE_LIMITED: Final = f"{PREFIX}_rate_limited_total"
# counter; labels: outcome (reserved | refused_budget | refused_rate | settled | released |
# expired)
RESERVATIONS: Final = f"{PREFIX}_reservations_total"

# The histograms above: Prometheus derives `_bucket`, `_sum` and `_count` series from each.
HISTOGRAMS: Final = frozenset(
    {TASK_DURATION, TASK_WAIT, WORKER_TASK_DURATION, WORKER_TOOL_CALL_DURATION, HTTP_DURATION}
)

# Exported by the platform's dependencies -----------------------------------------------
REDIS_UP: Final = "redis_up"  # redis_exporter
VAULT_UNSEALED: Final = "vault_core_unsealed"  # Vault telemetry
