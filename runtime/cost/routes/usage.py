"""Usage records: what a call cost; settles its reservation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from contracts import endpoints
from contracts.prices import UnknownModelError
from runtime.cost.deps import Caller, Engine, answer, invalid, lean, span, unknown_model
from runtime.cost.engine import AtOutsideWindow
from runtime.cost.ledger import from_nano
from runtime.cost.schemas import AlertOut, UsageIn, UsageOut

__all__ = ["USAGE_ROUTE", "router"]

# Full paths (runtime/cost/api.py includes this router as it is).
router = APIRouter(prefix=endpoints.COST_API, tags=["cost"], dependencies=[Caller])


async def usage(body: UsageIn, engine: Engine) -> Response:
    try:
        with span("usage record", body.task_id, body.attempt, body.model):
            done = await engine.record(
                body.task_id,
                body.attempt,
                body.model,
                body.agent_type,
                body.team,
                body.input_tokens,
                body.output_tokens,
                body.at,
                body.call,
            )
    except UnknownModelError:
        return unknown_model(engine)
    except AtOutsideWindow as err:
        return invalid("at", str(err))
    out = UsageOut(
        idempotency_key=done.idempotency_key,
        recorded=done.recorded,
        cost_usd=done.cost_usd,
        settled_reservation=done.settled_reservation,
        alerts=[
            AlertOut(
                scope=a.scope,
                window=a.window,
                threshold=a.threshold,
                spent_usd=from_nano(a.spent_nano),
                budget_usd=from_nano(a.budget_nano),
            )
            for a in done.alerts
        ],
    )
    return answer(out)


# Served through the fast lane (deps.lean); FastAPI declares the operation from `usage`.
USAGE_ROUTE: dict[str, Any] = {
    "path": "/usage",
    "endpoint": usage,
    "methods": ["POST"],
    "response_model": UsageOut,
}
router.add_api_route(**USAGE_ROUTE, route_class_override=lean(UsageIn, usage))
