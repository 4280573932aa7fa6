"""Hourly rate limits on requests, tokens and cost, for the platform and per team, in Redis.

A sliding-window log: each admitted call is a member "<id>|<tokens>|<nano-dollars>" of a sorted
set scored by its admission time, with running sums beside it. One Lua script per check drops
what left the window, checks every scope and dimension, and admits the call into all of them
or none — so the limits hold across every engine replica and concurrent caller, and no call is
admitted anywhere it was refused. The window is exact (no fixed-window edges, no refill
estimate): at no moment do the calls admitted within the last hour exceed a limit.

A refusal carries `retry_after_s`: when enough of the oldest calls leave the window for this
one to fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from infra.config.cost import HourlyLimits
from runtime.cost import keys
from runtime.cost.ledger import to_nano
from runtime.service.redis import reply

__all__ = [
    "DIMENSIONS",
    "WINDOW_S",
    "Limit",
    "LimitTooSmall",
    "RateLimited",
    "RateLimiter",
    "limit_from_config",
]

WINDOW_S = 3600
DIMENSIONS = ("requests", "tokens", "cost")
_NONE = -1

# KEYS: log, sums per scope. ARGV: now ms, window ms, member, tokens, nano, then per scope the
# three limits (-1: none). Returns {1} admitted, {2} already admitted (same member),
# {0, scope index, dimension index, retry ms} refused, {-1, scope index, dimension index}
# larger than the limit itself. Weights stay strings for HINCRBY (see ledger.py).
_ADMIT = """
-- HINCRBY refuses "-0".
local function neg(v) if v == '0' then return v end return '-' .. v end
local now, window, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local add = {'1', ARGV[4], ARGV[5]}
local fields = {'requests', 'tokens', 'cost'}
local scopes = #KEYS / 2
local function weights(m)
  local t, c = string.match(m, '|(%d+)|(%d+)$')
  return {'1', t, c}
end
-- Callers' clocks race (a request stamped earlier may reach Redis later): time never runs
-- backwards within a log, so a Retry-After never exceeds the window.
for s = 1, scopes do
  local newest = redis.call('ZRANGE', KEYS[2 * s - 1], -1, -1, 'WITHSCORES')
  if newest[2] and tonumber(newest[2]) > now then now = tonumber(newest[2]) end
end
for s = 1, scopes do
  local log, sums = KEYS[2 * s - 1], KEYS[2 * s]
  local gone = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
  for _, m in ipairs(gone) do
    local w = weights(m)
    for d = 1, 3 do redis.call('HINCRBY', sums, fields[d], neg(w[d])) end
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window) end
end
if redis.call('ZSCORE', KEYS[1], member) then return {2} end
for s = 1, scopes do
  local log, sums = KEYS[2 * s - 1], KEYS[2 * s]
  local current = redis.call('HMGET', sums, 'requests', 'tokens', 'cost')
  for d = 1, 3 do
    local limit = tonumber(ARGV[5 + 3 * (s - 1) + d])
    local used = tonumber(current[d] or '0')
    if limit ~= -1 and used + tonumber(add[d]) > limit then
      if tonumber(add[d]) > limit then return {-1, s, d} end
      local need = used + tonumber(add[d]) - limit
      local freed = 0
      local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
      for i = 1, #entries, 2 do
        freed = freed + tonumber(weights(entries[i])[d])
        if freed >= need then
          return {0, s, d, tonumber(entries[i + 1]) + window - now}
        end
      end
      return {0, s, d, window}
    end
  end
end
for s = 1, scopes do
  local log, sums = KEYS[2 * s - 1], KEYS[2 * s]
  redis.call('ZADD', log, now, member)
  for d = 1, 3 do redis.call('HINCRBY', sums, fields[d], add[d]) end
  redis.call('PEXPIRE', log, window)
  redis.call('PEXPIRE', sums, window)
end
return {1}
"""

# KEYS: log, sums per scope; ARGV: member. Takes back an admission whose call never ran.
_REFUND = """
local function neg(v) if v == '0' then return v end return '-' .. v end
local t, c = string.match(ARGV[1], '|(%d+)|(%d+)$')
local refunded = 0
for s = 1, #KEYS / 2 do
  if redis.call('ZREM', KEYS[2 * s - 1], ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[2 * s], 'requests', '-1')
    redis.call('HINCRBY', KEYS[2 * s], 'tokens', neg(t))
    redis.call('HINCRBY', KEYS[2 * s], 'cost', neg(c))
    refunded = refunded + 1
  end
end
return refunded
"""


@dataclass(frozen=True)
class Limit:
    """The hourly ceilings of one scope; None does not limit."""

    scope: str
    requests: int | None = None
    tokens: int | None = None
    cost_nano: int | None = None

    def values(self) -> tuple[int | None, int | None, int | None]:
        return self.requests, self.tokens, self.cost_nano

    @property
    def unlimited(self) -> bool:
        return all(v is None for v in self.values())


def limit_from_config(scope: str, cfg: HourlyLimits) -> Limit:
    return Limit(
        scope=scope,
        requests=cfg.requests,
        tokens=cfg.tokens,
        cost_nano=None if cfg.cost_usd is None else to_nano(cfg.cost_usd),
    )


class RateLimited(Exception):
    """Admitting the call would take a scope over a limit within the hour."""

    def __init__(self, scope: str, dimension: str, limit: int, retry_after_s: int) -> None:
        self.scope = scope
        self.dimension = dimension
        self.limit = limit
        self.retry_after_s = retry_after_s
        super().__init__(
            f"{scope} is at its hourly {dimension} limit ({limit}); retry in {retry_after_s} s"
        )


class LimitTooSmall(Exception):
    """The call alone is larger than a limit: no wait would admit it."""

    def __init__(self, scope: str, dimension: str, limit: int, amount: int) -> None:
        self.scope = scope
        self.dimension = dimension
        self.limit = limit
        self.amount = amount
        super().__init__(
            f"one call of {amount} {dimension} exceeds {scope}'s hourly limit of {limit}"
        )


def member(call_id: str, tokens: int, cost_nano: int) -> str:
    if "|" in call_id:
        raise ValueError("a call id may not contain '|'")
    return f"{call_id}|{tokens}|{cost_nano}"


class RateLimiter:
    def __init__(self, redis: Redis, window_s: int = WINDOW_S) -> None:
        self.redis = redis
        self.window_ms = window_s * 1000
        self._admit = redis.register_script(_ADMIT)
        self._refund = redis.register_script(_REFUND)

    @staticmethod
    def _keys(limits: Sequence[Limit]) -> list[str]:
        return [
            k for lim in limits for k in (keys.limit_log(lim.scope), keys.limit_sums(lim.scope))
        ]

    async def admit(
        self, call_id: str, tokens: int, cost_nano: int, limits: Sequence[Limit], now_ms: int
    ) -> bool:
        """Admit one call into every scope's window; False if this call was admitted before.

        Raises RateLimited or LimitTooSmall, having admitted it nowhere.
        """
        limits = [lim for lim in limits if not lim.unlimited]
        if not limits:
            return True
        args: list[str | int] = [now_ms, self.window_ms, member(call_id, tokens, cost_nano)]
        args += [str(tokens), str(cost_nano)]
        for lim in limits:
            args += [_NONE if v is None else v for v in lim.values()]
        raw = [int(v) for v in await self._admit(keys=self._keys(limits), args=args)]
        if raw[0] in (1, 2):
            return raw[0] == 1
        scope = limits[raw[1] - 1]
        dimension = DIMENSIONS[raw[2] - 1]
        ceiling = scope.values()[raw[2] - 1]
        assert ceiling is not None  # the script only refuses on a set limit
        if raw[0] == -1:
            amount = (1, tokens, cost_nano)[raw[2] - 1]
            raise LimitTooSmall(scope.scope, dimension, ceiling, amount)
        # Seconds, rounded up: retrying at the advertised moment must succeed.
        raise RateLimited(scope.scope, dimension, ceiling, max(1, math.ceil(raw[3] / 1000)))

    async def refund(
        self, call_id: str, tokens: int, cost_nano: int, limits: Sequence[Limit]
    ) -> int:
        limits = [lim for lim in limits if not lim.unlimited]
        if not limits:
            return 0
        return int(
            await self._refund(keys=self._keys(limits), args=[member(call_id, tokens, cost_nano)])
        )

    async def used(self, scope: str) -> tuple[int, int, int]:
        """Requests, tokens and nano-dollars admitted in the window (as of the last check)."""
        values = await reply(self.redis.hmget(keys.limit_sums(scope), list(DIMENSIONS)))
        requests, tokens, cost = (int(v or 0) for v in values)
        return requests, tokens, cost
