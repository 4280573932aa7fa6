"""The cost engine's HTTP API (prefix /api/v1), called by the manager and the agent workers.

Every endpoint needs `Authorization: Bearer <token>` (a token of AGENTOPS_API_TOKEN_FILE).
Money is a JSON string holding a decimal (exact), never a float. One model call of a task is
identified by `task_id` + `attempt` + `call` (default 1; an LLM tool loop's n-th model call is
`call` n): that is the idempotency key of its usage record and the id of its reservation, so
each call of a loop is held and settled on its own.

POST /api/v1/reservations — check-and-reserve before a model call
    body: task_id, attempt, call, team, agent_type, model, max_input_tokens, max_output_tokens
    201:  reservation_id, created, requested_model, model (use this one), downgraded, reason,
          max_cost_usd, expires_at
    429:  an hourly limit is reached (Retry-After header; body: scope, dimension, limit)
    402:  a budget cannot hold the call (Retry-After: until the window ends; body: scope,
          window, budget_usd, spent_usd, reserved_usd, requested_usd)
    422:  unknown model (the field named, the configured models listed), or one call larger
          than a limit
DELETE /api/v1/reservations/{task_id}/{attempt}?call=n — the call did not happen: release the hold
    200:  released (false when nothing was held); the budgets and the hourly limits get back
          everything the call held, its request included
POST /api/v1/usage — record a call's usage; settles the reservation of the same task attempt,
    and the hourly limits' hold of its maximum to its actual tokens and cost
    body: task_id, attempt, call, model, agent_type, team, input_tokens, output_tokens, at (opt.,
          ISO 8601 with zone; default now; within the engine's usage window around now,
          AGENTOPS_USAGE_MAX_AGE_SECONDS back and AGENTOPS_USAGE_MAX_AHEAD_SECONDS ahead)
    200:  idempotency_key, recorded (false for a replay: nothing counted twice), cost_usd,
          settled_reservation, alerts (budget thresholds this record crossed first)
    422:  unknown model, or `at` outside the window (the field and the window named)
POST /api/v1/tool-calls — admit one MCP tool call against the hourly tool-call limits
    body: task_id, attempt, team, server, tool
    201:  admitted
    429:  the platform's or the team's tool calls this hour are at their limit (Retry-After)
GET /api/v1/limits — what each limited scope's sliding hour counts now
    200:  [scope, window_seconds, requests, tokens, cost_usd, open_holds, limit_requests,
          limit_tokens, limit_cost_usd]
POST /api/v1/recommendations — which model should a task use
    body: task_type, complexity, quality_priority, speed_priority (each 0..1, optional: config
          defaults), budget_usd (optional), team (optional: its budgets drive downgrades)
    200:  model, estimated_cost_usd, input_tokens, output_tokens, score, reasoning,
          downgraded_from, notes, alternatives[] (model, estimated_cost_usd, input_tokens,
          output_tokens, quality, speed, score), excluded {model: estimated_cost_usd}
    422:  no model fits the budget (body: cheapest, cheapest_cost_usd)
GET /api/v1/report?days=30 — spend analysis from the ledger
    200:  as_of, series[] (date, spend_usd, budget_usd), total_usd, daily_average_usd,
          trend_usd_per_day, month_to_date_usd, projected_month_end_usd, monthly_budget_usd,
          burn_rate, by_model {model: usd}, suggestions[] (kind, priority, description, action,
          potential_savings_usd)
GET /api/v1/prices — effective price per model and its source

No 4xx body repeats a submitted value: errors name the field and what is allowed.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from contracts import endpoints
from runtime.cost.deps import Caller
from runtime.cost.engine import CostEngine
from runtime.cost.routes import recommendations, reports, reservations, tool_calls, usage
from runtime.service.auth import BearerAuth
from runtime.service.lean import add_lean_routes

__all__ = ["install_api", "router"]

# Request and response bodies: runtime/cost/schemas.py; shared dependencies: runtime/cost/deps.py.
# The hot parts (reservations, usage: two requests per task) carry the API's prefix, tags and
# token check themselves, so their routes know their full paths and take the fast lane.
HOT = (reservations, usage)
router = APIRouter(prefix=endpoints.COST_API, tags=["cost"], dependencies=[Caller])
for part in (tool_calls, recommendations, reports):
    router.include_router(part.router)


def install_api(app: FastAPI, engine: CostEngine, auth: BearerAuth) -> None:
    """Serve the API on `app` for this engine, behind the callers' bearer tokens."""
    app.state.engine = engine
    app.state.auth = auth
    for hot in HOT:
        app.include_router(hot.router)
        add_lean_routes(app, hot.router)
    app.include_router(router)
