"""Reservations: check-and-reserve before a model call, release when it did not happen."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from contracts import endpoints
from contracts.prices import UnknownModelError
from contracts.settings.llm import MAX_MODEL_CALLS
from runtime.cost.budgets import window_end
from runtime.cost.deps import (
    Caller,
    Engine,
    answer,
    error,
    lean,
    rate_limited,
    span,
    unknown_model,
)
from runtime.cost.ledger import from_nano
from runtime.cost.limits import LimitTooSmall, RateLimited
from runtime.cost.reservations import BudgetExceeded
from runtime.cost.schemas import ReserveIn, ReserveOut

__all__ = ["RESERVE_ROUTE", "router"]

# Full paths (runtime/cost/api.py includes this router as it is).
router = APIRouter(prefix=endpoints.COST_API, tags=["cost"], dependencies=[Caller])


async def reserve(body: ReserveIn, engine: Engine) -> Response:
    try:
        with span("reservation", body.task_id, body.attempt, body.model):
            held = await engine.reserve(
                body.task_id,
                body.attempt,
                body.team,
                body.model,
                body.max_input_tokens,
                body.max_output_tokens,
                body.call,
            )
    except UnknownModelError:
        return unknown_model(engine)
    except RateLimited as err:
        return rate_limited(err)
    except LimitTooSmall as err:
        return error(422, {"detail": str(err), "scope": err.scope, "dimension": err.dimension})
    except BudgetExceeded as err:
        now = engine.clock()
        wait = math.ceil((window_end(err.line.window, now) - now).total_seconds())
        return error(
            402,
            {
                "detail": str(err),
                "scope": err.line.scope,
                "window": err.line.window,
                "budget_usd": str(from_nano(err.line.budget_nano)),
                "spent_usd": str(from_nano(err.spent_nano)),
                "reserved_usd": str(from_nano(err.reserved_nano)),
                "requested_usd": str(from_nano(err.amount_nano)),
            },
            max(1, wait),
        )
    out = ReserveOut(
        reservation_id=held.reservation.id,
        created=held.reservation.created,
        requested_model=held.requested_model,
        model=held.model,
        downgraded=held.model != held.requested_model,
        reason=held.downgrade.reason if held.downgrade else None,
        max_cost_usd=held.max_cost_usd,
        expires_at=held.reservation.expires_at,
    )
    return answer(out, status.HTTP_201_CREATED)


# Served through the fast lane (deps.lean); FastAPI declares the operation from `reserve`.
RESERVE_ROUTE: dict[str, Any] = {
    "path": "/reservations",
    "endpoint": reserve,
    "methods": ["POST"],
    "status_code": status.HTTP_201_CREATED,
    "response_model": ReserveOut,
}
router.add_api_route(**RESERVE_ROUTE, route_class_override=lean(ReserveIn, reserve))


@router.delete("/reservations/{task_id}/{attempt}")
async def release(
    engine: Engine,
    task_id: Annotated[str, Path(max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")],
    attempt: Annotated[int, Path(ge=1, le=1000)],
    call: Annotated[int, Query(ge=1, le=MAX_MODEL_CALLS)] = 1,
) -> dict[str, bool]:
    return {"released": await engine.release(task_id, attempt, call)}
