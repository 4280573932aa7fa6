"""Recommendations: which model a task should use."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from runtime.cost.deps import Engine, error, invalid
from runtime.cost.recommend import NoModelFits, Task
from runtime.cost.schemas import RecommendIn, RecommendOut, recommend_out

__all__ = ["router"]

router = APIRouter()


@router.post("/recommendations", response_model=RecommendOut)
async def recommendation(body: RecommendIn, engine: Engine) -> Any:
    weights = engine.cost.recommendation
    quality = weights.quality_priority if body.quality_priority is None else body.quality_priority
    speed = weights.speed_priority if body.speed_priority is None else body.speed_priority
    if quality + speed > 1:
        return invalid("speed_priority", "quality_priority + speed_priority must not exceed 1")
    task = Task(
        body.task_type,
        weights.complexity if body.complexity is None else body.complexity,
        quality,
        speed,
        body.budget_usd,
    )
    try:
        answer = await engine.recommend(task, body.team)
    except NoModelFits as err:
        return error(
            422,
            {
                "detail": str(err),
                "cheapest": err.cheapest,
                "cheapest_cost_usd": str(err.cheapest_cost),
            },
        )
    return recommend_out(answer)
