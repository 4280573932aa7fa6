"""Reports: spend analysis, the hourly limits' counts, the effective prices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from runtime.cost.deps import Engine
from runtime.cost.ledger import from_nano
from runtime.cost.limits import WINDOW_S
from runtime.cost.schemas import LimitOut, PriceOut, ReportOut, report_out

__all__ = ["router"]

router = APIRouter()


@router.get("/report", response_model=ReportOut)
async def report(engine: Engine, days: Annotated[int, Query(ge=1, le=366)] = 30) -> Any:
    return report_out(await engine.report(days), engine.cost.budget.daily_usd)


@router.get("/limits", response_model=list[LimitOut])
async def limits(engine: Engine) -> Any:
    return [
        LimitOut(
            scope=limit.scope,
            window_seconds=WINDOW_S,
            requests=used.requests,
            tokens=used.tokens,
            cost_usd=from_nano(used.cost_nano),
            open_holds=used.holds,
            limit_requests=limit.requests,
            limit_tokens=limit.tokens,
            limit_cost_usd=None if limit.cost_nano is None else from_nano(limit.cost_nano),
        )
        for limit, used in await engine.limit_state()
    ]


@router.get("/prices", response_model=list[PriceOut])
async def prices(engine: Engine) -> Any:
    return [
        PriceOut(
            model=r.model,
            provider=r.provider,
            input_per_1k_usd=r.input_per_1k,
            output_per_1k_usd=r.output_per_1k,
            source=r.source,
        )
        for r in engine.book.table(engine.clock())
    ]
