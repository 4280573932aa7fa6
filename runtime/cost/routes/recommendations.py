"""Recommendations: which model a task should use."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from runtime.cost.deps import Engine, error, invalid
from runtime.cost.recommend import NoModelFits, Task
from runtime.cost.schemas import CandidateOut, RecommendIn, RecommendOut

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
    chosen = answer.chosen
    return RecommendOut(
        model=answer.model,
        estimated_cost_usd=chosen.estimated_cost_usd,
        input_tokens=chosen.input_tokens,
        output_tokens=chosen.output_tokens,
        score=chosen.score,
        reasoning=answer.reasoning,
        downgraded_from=answer.downgraded_from,
        notes=answer.notes,
        alternatives=[
            CandidateOut(
                model=c.model,
                estimated_cost_usd=c.estimated_cost_usd,
                input_tokens=c.input_tokens,
                output_tokens=c.output_tokens,
                quality=c.quality,
                speed=c.speed,
                score=c.score,
            )
            for c in answer.ranked
            if c.model != answer.model
        ],
        excluded=answer.excluded,
    )
