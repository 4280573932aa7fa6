"""Hourly limits on MCP tool calls, for the platform and per team, in Redis.

A sliding-window log per scope (a sorted set of admitted calls scored by admission time). One
Lua script drops what left the window, checks every scope and admits the call into all of them
or none, so the limit holds across engine replicas and concurrent workers. A tool call holds
nothing to settle: it is admitted or refused, like a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from runtime.cost import keys
from runtime.cost.limits import WINDOW_S, RateLimited

__all__ = ["DIMENSION", "LUA_TOOL_CALLS", "ToolCallLimiter", "ToolLimit"]

DIMENSION = "tool_calls"
_NONE = -1

# KEYS: one log per scope. ARGV: now (ms), window (ms), member, then one limit per key (-1: none).
# Returns {0, 0} when admitted, else {index of the scope refused (from 1), ms until it fits}.
LUA_TOOL_CALLS = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
end
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 + i])
  if limit >= 0 and redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {i, tonumber(oldest[2]) + window - now}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
end
return {0, 0}
"""


@dataclass(frozen=True)
class ToolLimit:
    scope: str
    calls: int | None  # per sliding hour; None does not limit


class ToolCallLimiter:
    def __init__(self, redis: Redis) -> None:
        self.script = redis.register_script(LUA_TOOL_CALLS)

    async def admit(self, limits: Sequence[ToolLimit], call_id: str, now_ms: int) -> None:
        """Admit one call into every scope, or raise RateLimited naming the scope refused."""
        scoped = [lim for lim in limits if lim.calls is not None]
        if not scoped:
            return
        argv: list[str | int] = [now_ms, WINDOW_S * 1000, call_id]
        argv += [_NONE if lim.calls is None else lim.calls for lim in scoped]
        refused, wait_ms = await self.script(
            keys=[keys.tool_calls(lim.scope) for lim in scoped], args=argv
        )
        if int(refused):
            lim = scoped[int(refused) - 1]
            assert lim.calls is not None
            raise RateLimited(lim.scope, DIMENSION, lim.calls, max(1, -(-int(wait_ms) // 1000)))
