"""MCP tool calls: admit one against the hourly tool-call limits, for the platform and the team."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, status

from runtime.cost.deps import Engine, rate_limited
from runtime.cost.limits import RateLimited
from runtime.cost.schemas import ToolCallIn

__all__ = ["router"]

router = APIRouter()


@router.post("/tool-calls", status_code=status.HTTP_201_CREATED)
async def tool_call(body: ToolCallIn, engine: Engine) -> Any:
    """Admit one MCP tool call against the hourly tool-call limits (429 when over)."""
    call_id = f"{body.task_id}|{body.attempt}|{uuid.uuid4().hex}"
    try:
        await engine.admit_tool_call(body.team, call_id)
    except RateLimited as err:
        return rate_limited(err)
    return {"admitted": True}
