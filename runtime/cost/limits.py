"""Hourly rate limits on requests, tokens and cost, for the platform and per team, in Redis.

A sliding-window log: each admitted call is a member "<id>|<tokens>|<nano-dollars>" of a sorted
set scored by its admission time, with running sums beside it. One Lua script per check drops
what left the window, checks every scope and dimension, and admits the call into all of them
or none — so the limits hold across every engine replica and concurrent caller, and no call is
admitted anywhere it was refused. The window is exact (no fixed-window edges, no refill
estimate): at no moment do the calls admitted within the last hour exceed a limit.

A call is admitted at its maximum (reserved tokens and cost) and holds that maximum until it
is settled: its usage record (the ledger's script, atomically with the spend) replaces the
member by the call's actual tokens and cost at the same admission time, so the unused rest
returns at once and the window counts what calls really used. A release (the call did not
happen) or a hold that lapses unsettled returns everything, the request included.

A refusal carries `retry_after_s`: when enough of the oldest calls are sure to leave the window
for this one to fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from contracts.config.cost import HourlyLimits
from runtime.cost import keys
from runtime.cost.money import to_nano
from runtime.service.redis import reply

__all__ = [
    "DIMENSIONS",
    "LUA_ADMIT",
    "LUA_LIMITS",
    "WINDOW_S",
    "Limit",
    "LimitTooSmall",
    "RateLimited",
    "RateLimiter",
    "Used",
    "limit_args",
    "limit_from_config",
    "limited",
    "refusal",
    "scope_keys",
]

WINDOW_S = 3600
DIMENSIONS = ("requests", "tokens", "cost")
_NONE = -1

# Shared by every script below. KEYS hold four keys per scope (log, sums, held, holds), the
# scope's slice starting at `base`; each script first prunes what left the window and returns
# every hold that lapsed unsettled. Weights stay strings for HINCRBY (see ledger.py).
LUA_LIMITS = """
-- HINCRBY refuses "-0".
local function neg(v) if v == '0' then return v end return '-' .. v end
local FIELDS = {'requests', 'tokens', 'cost'}
local function weights(m)
  local t, c = string.match(m, '|(%d+)|(%d+)$')
  return {'1', t, c}
end
local function weigh(base, m, sign)
  local w = weights(m)
  for d = 1, 3 do
    local v = w[d]
    if sign < 0 then v = neg(v) end
    redis.call('HINCRBY', KEYS[base + 2], FIELDS[d], v)
  end
end
-- Takes one member out of the log and its weights out of the sums; 1 if it was there.
local function take(base, m)
  if redis.call('ZREM', KEYS[base + 1], m) == 1 then
    weigh(base, m, -1)
    return 1
  end
  return 0
end
-- Ends the hold of call `id` in one scope: its member, or nil if it held nothing there.
local function unhold(base, id)
  local m = redis.call('HGET', KEYS[base + 3], id)
  if m then
    redis.call('HDEL', KEYS[base + 3], id)
    redis.call('ZREM', KEYS[base + 4], id)
  end
  return m
end
local function prune(base, now, window)
  local log, sums = KEYS[base + 1], KEYS[base + 2]
  local gone = redis.call('ZRANGEBYSCORE', log, '-inf', now - window)
  for _, m in ipairs(gone) do weigh(base, m, -1) end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window) end
  -- A hold that lapsed without a usage record returns everything it held.
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[base + 4], '-inf', now)
  for _, id in ipairs(lapsed) do
    local m = unhold(base, id)
    if m then take(base, m) end
  end
end
local function keep(base, ttl)
  for k = 1, 4 do redis.call('PEXPIRE', KEYS[base + k], ttl) end
end
-- Replaces held member `m` (in the log at `score`) by `actual`: the sums change by the
-- difference, one increment per dimension that changed (a request is a request).
local function replace(base, m, actual, score)
  if m == actual then return end
  redis.call('ZREM', KEYS[base + 1], m)
  if redis.call('ZADD', KEYS[base + 1], score, actual) == 0 then
    weigh(base, m, -1)  -- already counted (not seen: one id settles once): only the hold leaves
    return
  end
  local held, used = weights(m), weights(actual)
  for d = 2, 3 do
    local change = tonumber(used[d]) - tonumber(held[d])
    if change ~= 0 then
      redis.call('HINCRBY', KEYS[base + 2], FIELDS[d], string.format('%d', change))
    end
  end
end
-- Settles call `id` to what it really used: its held maximum (if still held and in the
-- window) becomes the actual amount at the same admission time, and the keys keep the life
-- its admission gave them (past that time's window); a call that held nothing (its hold
-- lapsed, or it never reserved) is counted from `now`.
local function settle(base, now, window, id, tokens, nano)
  prune(base, now, window)
  local actual = id .. '|' .. tokens .. '|' .. nano
  local m = unhold(base, id)
  if m then
    local admitted = redis.call('ZSCORE', KEYS[base + 1], m)
    if admitted then replace(base, m, actual, admitted) end
    return
  end
  if redis.call('ZADD', KEYS[base + 1], now, actual) == 1 then weigh(base, actual, 1) end
  keep(base, window)
end
"""

# The admission of one call, as functions over the scopes whose four keys start at KEYS[base
# + 1] (the check-and-reserve script runs them beside the budgets). `add`: the call's weights.
LUA_ADMIT = """
-- Callers' clocks race (a request stamped earlier may reach Redis later): time never runs
-- backwards within a log, so a Retry-After never exceeds the window.
local function admit_clock(base, scopes, now)
  for s = 1, scopes do
    local newest = redis.call('ZRANGE', KEYS[base + 4 * s - 3], -1, -1, 'WITHSCORES')
    if newest[2] and tonumber(newest[2]) > now then now = tonumber(newest[2]) end
  end
  return now
end
-- Prunes, then {1} fits, {2} already admitted (same id), {0, scope index, dimension index,
-- retry ms} refused, {-1, scope index, dimension index} larger than the limit itself.
-- `limits`: three per scope (-1: none). Writes nothing but the pruning.
local function admit_check(base, scopes, now, window, id, member, add, limits)
  for s = 1, scopes do prune(base + 4 * (s - 1), now, window) end
  if redis.call('HEXISTS', KEYS[base + 3], id) == 1
     or redis.call('ZSCORE', KEYS[base + 1], member) then
    return {2}
  end
  for s = 1, scopes do
    local log, sums = KEYS[base + 4 * s - 3], KEYS[base + 4 * s - 2]
    local current = redis.call('HMGET', sums, 'requests', 'tokens', 'cost')
    for d = 1, 3 do
      local limit = limits[3 * (s - 1) + d]
      local used = tonumber(current[d] or '0')
      if limit ~= -1 and used + add[d] > limit then
        if add[d] > limit then return {-1, s, d} end
        -- Entries are sure to leave when their hour ends (a hold may settle to less earlier).
        local need = used + add[d] - limit
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
  return {1}
end
-- Holds the call's maximum in every scope until it is settled, released or `hold` passes.
local function admit_hold(base, scopes, now, window, hold, id, member)
  for s = 1, scopes do
    local b = base + 4 * (s - 1)
    redis.call('ZADD', KEYS[b + 1], now, member)
    weigh(b, member, 1)
    redis.call('HSET', KEYS[b + 3], id, member)
    redis.call('ZADD', KEYS[b + 4], now + hold, id)
    keep(b, window + hold)
  end
end
"""

# ARGV: now ms, window ms, hold ms, id, tokens, nano, then per scope the three limits (-1:
# none). Returns what admit_check does; {1} admitted.
_ADMIT = (
    LUA_LIMITS
    + LUA_ADMIT
    + """
local window, hold, id = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local member = id .. '|' .. ARGV[5] .. '|' .. ARGV[6]
local limits = {}
for i = 7, #ARGV do limits[#limits + 1] = tonumber(ARGV[i]) end
local scopes = #KEYS / 4
local now = admit_clock(0, scopes, tonumber(ARGV[1]))
local found = admit_check(0, scopes, now, window, id, member,
                         {1, tonumber(ARGV[5]), tonumber(ARGV[6])}, limits)
if found[1] ~= 1 then return found end
admit_hold(0, scopes, now, window, hold, id, member)
return {1}
"""
)

# ARGV: now ms, window ms, id. Takes back everything a call held whose call never ran;
# returns in how many scopes it held something.
_RELEASE = (
    LUA_LIMITS
    + """
local released = 0
for s = 1, #KEYS / 4 do
  local base = 4 * (s - 1)
  prune(base, tonumber(ARGV[1]), tonumber(ARGV[2]))
  local m = unhold(base, ARGV[3])
  if m then released = released + take(base, m) end
end
return released
"""
)

# ARGV: now ms, window ms. The sums of each scope after pruning.
_USED = (
    LUA_LIMITS
    + """
local out = {}
for s = 1, #KEYS / 4 do
  local base = 4 * (s - 1)
  prune(base, tonumber(ARGV[1]), tonumber(ARGV[2]))
  local v = redis.call('HMGET', KEYS[base + 2], 'requests', 'tokens', 'cost')
  for d = 1, 3 do table.insert(out, v[d] or '0') end
  table.insert(out, redis.call('HLEN', KEYS[base + 3]))
end
return out
"""
)


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


@dataclass(frozen=True)
class Used:
    """What a scope's window counts now: held maxima of open calls plus settled actuals."""

    requests: int
    tokens: int
    cost_nano: int
    holds: int  # calls still holding their maximum (no usage record yet)


def scope_keys(scopes: Sequence[str]) -> list[str]:
    """The KEYS of the limit scripts: four per scope, in the order LUA_LIMITS expects."""
    return [
        k
        for scope in scopes
        for k in (
            keys.limit_log(scope),
            keys.limit_sums(scope),
            keys.limit_held(scope),
            keys.limit_holds(scope),
        )
    ]


def limited(limits: Sequence[Limit]) -> list[Limit]:
    return [lim for lim in limits if not lim.unlimited]


def limit_args(limits: Sequence[Limit]) -> list[int]:
    """The ARGV tail of the admission: three limits per scope, -1 for none."""
    return [_NONE if v is None else v for lim in limits for v in lim.values()]


def refusal(
    raw: Sequence[int], limits: Sequence[Limit], tokens: int, cost_nano: int
) -> RateLimited | LimitTooSmall:
    """The exception of admit_check's refusal `raw` ({0 | -1, scope, dimension, retry ms})."""
    scope = limits[raw[1] - 1]
    dimension = DIMENSIONS[raw[2] - 1]
    ceiling = scope.values()[raw[2] - 1]
    assert ceiling is not None  # the script only refuses on a set limit
    if raw[0] == -1:
        return LimitTooSmall(scope.scope, dimension, ceiling, (1, tokens, cost_nano)[raw[2] - 1])
    # Seconds, rounded up: retrying at the advertised moment must succeed.
    return RateLimited(scope.scope, dimension, ceiling, max(1, math.ceil(raw[3] / 1000)))


class RateLimiter:
    def __init__(self, redis: Redis, window_s: int = WINDOW_S) -> None:
        self.redis = redis
        self.window_ms = window_s * 1000
        self._admit = redis.register_script(_ADMIT)
        self._release = redis.register_script(_RELEASE)
        self._used = redis.register_script(_USED)

    async def admit(
        self,
        call_id: str,
        tokens: int,
        cost_nano: int,
        limits: Sequence[Limit],
        now_ms: int,
        hold_ms: int | None = None,
    ) -> bool:
        """Admit one call's maximum into every scope's window and hold it there until the
        call's usage record settles it to the actual amount (ledger.py), its release, or
        `hold_ms` (default: the window) without either; False if this call was admitted before.

        Raises RateLimited or LimitTooSmall, having admitted it nowhere.
        """
        limits = limited(limits)
        if not limits:
            return True
        member(call_id, tokens, cost_nano)  # refuses an id the log could not parse
        hold = self.window_ms if hold_ms is None else hold_ms
        args: list[str | int] = [now_ms, self.window_ms, hold, call_id, str(tokens), str(cost_nano)]
        args += limit_args(limits)
        keys_ = scope_keys([lim.scope for lim in limits])
        raw = [int(v) for v in await self._admit(keys=keys_, args=args)]
        if raw[0] in (1, 2):
            return raw[0] == 1
        raise refusal(raw, limits, tokens, cost_nano)

    async def release(self, call_id: str, scopes: Sequence[str], now_ms: int) -> int:
        """Take back everything a call holds whose call never ran; in how many scopes it held."""
        if not scopes:
            return 0
        args: list[str | int] = [now_ms, self.window_ms, call_id]
        return int(await self._release(keys=scope_keys(scopes), args=args))

    async def used(self, scope: str, now_ms: int | None = None) -> tuple[int, int, int]:
        """Requests, tokens and nano-dollars counted in the window (as of the last check, or
        as of `now_ms`, pruning first)."""
        if now_ms is None:
            values = await reply(self.redis.hmget(keys.limit_sums(scope), list(DIMENSIONS)))
            requests, tokens, cost = (int(v or 0) for v in values)
            return requests, tokens, cost
        state = (await self.state([scope], now_ms))[0]
        return state.requests, state.tokens, state.cost_nano

    async def state(self, scopes: Sequence[str], now_ms: int) -> list[Used]:
        """What each scope's window counts at `now_ms` (lapsed holds and old calls pruned)."""
        if not scopes:
            return []
        raw = [
            int(v) for v in await self._used(keys=scope_keys(scopes), args=[now_ms, self.window_ms])
        ]
        return [Used(*raw[i : i + 4]) for i in range(0, len(raw), 4)]
