"""Check-and-reserve against the budgets, in Redis.

Before a call, its caller reserves the most it can cost. One Lua script releases reservations
whose timeout passed, checks `spent + reserved + this call ≤ budget` for every budget the call
is held to (platform and team, day and month) and holds the amount — atomically, so parallel
callers on any number of engine replicas never jointly pass a budget. Recording the call's
usage (ledger.py) settles the reservation of the same idempotency key in the same script that
adds the spend. A reservation nobody settles lapses after its timeout.

Reserved amounts are what is in flight now, so they count against the current day and month
whichever window the reservation was made in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from runtime.cost import keys
from runtime.cost.budgets import BudgetLine
from runtime.cost.limits import (
    LUA_ADMIT,
    LUA_LIMITS,
    Limit,
    limit_args,
    refusal,
    scope_keys,
)
from runtime.service.redis import NO_REPLICAS, AcceptingScript, Replication, reply, text

__all__ = ["BudgetExceeded", "CallMaximum", "Checked", "Reservation", "Reservations"]

# Releases lapsed reservations; shared by the reserve and sweep scripts.
# KEYS[1] reserved, KEYS[2] expiry, KEYS[3] reservations; `now` in ms.
_RELEASE_EXPIRED = """
-- HINCRBY refuses "-0".
local function neg(v) if v == '0' then return v end return '-' .. v end
local function release_expired(now)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
  for _, id in ipairs(ids) do
    local held = redis.call('HGET', KEYS[3], id)
    if held then
      local amount, team = string.match(held, '^(%d+)|(.*)$')
      redis.call('HINCRBY', KEYS[1], 'platform', neg(amount))
      redis.call('HINCRBY', KEYS[1], 'team:' .. team, neg(amount))
      redis.call('HDEL', KEYS[3], id)
    end
  end
  if #ids > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
  return #ids
end
"""

# The budget check and hold, over KEYS[1..3] (reserved, expiry, reservations) and the ledger
# hash of each budget line at KEYS[3 + i]. `lines`: {scope, ledger field, budget nano} each.
_LUA_BUDGETS = """
-- The amount already held under this id, or nil.
local function held_amount(id)
  local existing = redis.call('HGET', KEYS[3], id)
  if existing then return string.match(existing, '^(%d+)|') end
  return nil
end
-- What each line has spent and reserved now ({spent, reserved}, as stored), the reserved
-- amounts of every line's scope in one read.
local function budget_used(lines)
  if #lines == 0 then return {} end
  local scopes = {}
  for i, line in ipairs(lines) do scopes[i] = line[1] end
  local reserved = redis.call('HMGET', KEYS[1], unpack(scopes))
  local used = {}
  for i, line in ipairs(lines) do
    used[i] = {redis.call('HGET', KEYS[3 + i], line[2]) or '0', reserved[i] or '0'}
  end
  return used
end
-- nil when every budget holds the amount besides what is spent and reserved (`used`, as
-- budget_used read it); else {line index, spent, reserved} of the first that cannot.
local function budget_check(lines, used, amount)
  for i, line in ipairs(lines) do
    local spent, reserved = used[i][1], used[i][2]
    if tonumber(spent) + tonumber(reserved) + amount > line[3] then
      return {i, spent, reserved}
    end
  end
  return nil
end
local function budget_hold(id, amount, team, expires)
  redis.call('HSET', KEYS[3], id, amount .. '|' .. team)
  redis.call('ZADD', KEYS[2], expires, id)
  redis.call('HINCRBY', KEYS[1], 'platform', amount)
  redis.call('HINCRBY', KEYS[1], 'team:' .. team, amount)
end
local function budget_lines(first, count)
  local lines = {}
  for i = 1, count do
    local o = first + 3 * (i - 1)
    lines[i] = {ARGV[o], ARGV[o + 1], tonumber(ARGV[o + 2])}
  end
  return lines
end
"""

# KEYS: reserved, expiry, reservations, then the ledger hash of each budget line.
# ARGV: now ms, expires ms, id, nano amount, team, then per budget line: scope, ledger field,
# budget nano. Returns {1, expired} held, {2, expired, amount} already held under this id,
# {0, expired, line index, spent, reserved} refused. Sums stay below 2^53 nano-dollars (9e6 USD),
# where Lua's doubles are exact.
_RESERVE = (
    _RELEASE_EXPIRED
    + _LUA_BUDGETS
    + """
local expired = release_expired(tonumber(ARGV[1]))
local existing = held_amount(ARGV[3])
if existing then return {2, expired, existing} end
local lines = budget_lines(6, (#ARGV - 5) / 3)
local refused = budget_check(lines, budget_used(lines), tonumber(ARGV[4]))
if refused then return {0, expired, refused[1], refused[2], refused[3]} end
budget_hold(ARGV[3], ARGV[4], ARGV[5], ARGV[2])
return {1, expired}
"""
)

# The whole check-and-reserve of a call in one step: the downgrade decision, the hourly limits
# and the budgets, each read and held atomically together.
# KEYS: reserved, expiry, reservations, the ledger hash of each budget line, then four per
# limited scope (limits.scope_keys).
# ARGV: now ms, expires ms, limit window ms, limit hold ms, id, tokens, team, nano amount of the
# requested model, nano amount of its downgrade target ('': none), number of budget lines, per
# line: scope, ledger field, budget nano, downgrade threshold nano (-1: never), then three
# limits per limited scope (-1: none).
# Returns {outcome, expired, model (1 requested, 2 target), downgrade line, its used nano, ...}:
# outcome 1 held; 2 already held under this id (+ amount); 0 over a budget (+ line index,
# spent, reserved); 3 refused by a limit (+ admit_check's refusal).
_CHECK_AND_RESERVE = (
    LUA_LIMITS
    + LUA_ADMIT
    + _RELEASE_EXPIRED
    + _LUA_BUDGETS
    + """
local now, window, hold = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local id, tokens, team = ARGV[5], ARGV[6], ARGV[7]
local count = tonumber(ARGV[10])
local lines = budget_lines(11, count)
local thresholds = {}
for i = 1, count do thresholds[i] = tonumber(ARGV[10 + count * 3 + i]) end
local limits = {}
for i = 11 + count * 4, #ARGV do limits[#limits + 1] = tonumber(ARGV[i]) end
local expired = release_expired(now)
-- Read once: nothing below changes a budget's spent or reserved before its check.
local spent_reserved = budget_used(lines)
-- Downgraded once spent + reserved of any budget reached its share (a call past the
-- downgrade share runs the cheaper model).
local model, due, due_used, amount = 1, 0, 0, ARGV[8]
if ARGV[9] ~= '' then
  for i, line in ipairs(lines) do
    local used = tonumber(spent_reserved[i][1]) + math.max(0, tonumber(spent_reserved[i][2]))
    if thresholds[i] >= 0 and used >= thresholds[i] then
      model, due, due_used, amount = 2, i, used, ARGV[9]
      break
    end
  end
end
local head = {expired, model, due, due_used}
local base, member = 3 + count, id .. '|' .. tokens .. '|' .. amount
local scopes = (#KEYS - base) / 4
local admitted, at = {2}, now
if scopes > 0 then
  at = admit_clock(base, scopes, now)
  admitted = admit_check(base, scopes, at, window, id, member,
                         {1, tonumber(tokens), tonumber(amount)}, limits)
  if admitted[1] < 1 then
    return {3, head[1], head[2], head[3], head[4], admitted[1], admitted[2], admitted[3],
            admitted[4] or 0}
  end
end
local existing = held_amount(id)
if existing then return {2, head[1], head[2], head[3], head[4], existing} end
local refused = budget_check(lines, spent_reserved, tonumber(amount))
if refused then
  return {0, head[1], head[2], head[3], head[4], refused[1], refused[2], refused[3]}
end
if admitted[1] == 1 then admit_hold(base, scopes, at, window, hold, id, member) end
budget_hold(id, amount, team, ARGV[2])
return {1, head[1], head[2], head[3], head[4]}
"""
)

_SWEEP = _RELEASE_EXPIRED + "\nreturn release_expired(tonumber(ARGV[1]))\n"

# KEYS: reserved, expiry, reservations; ARGV: id. Gives back a reservation whose call failed.
_RELEASE = """
local function neg(v) if v == '0' then return v end return '-' .. v end
local held = redis.call('HGET', KEYS[3], ARGV[1])
if not held then return 0 end
local amount, team = string.match(held, '^(%d+)|(.*)$')
redis.call('HINCRBY', KEYS[1], 'platform', neg(amount))
redis.call('HINCRBY', KEYS[1], 'team:' .. team, neg(amount))
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

_STATE = [keys.RESERVED, keys.RESERVATION_EXPIRY, keys.RESERVATIONS]


@dataclass(frozen=True)
class Reservation:
    id: str
    team: str
    amount_nano: int
    expires_at: dt.datetime
    created: bool  # False: the id was already held (a retried check-and-reserve)
    expired_released: int  # lapsed reservations this call released on the way


@dataclass(frozen=True)
class CallMaximum:
    """What one call may cost at most, and what it is held to: the input of check_and_reserve."""

    reservation_id: str
    team: str
    tokens: int
    amount_nano: int  # the requested model's maximum
    target_nano: int | None  # its downgrade target's maximum (None: the model has none)
    lines: Sequence[BudgetLine]
    thresholds: Sequence[int]  # per line: the used nano-dollars that downgrade (-1: never)
    limits: Sequence[Limit]  # the limited scopes (limits.limited)


@dataclass(frozen=True)
class Checked:
    reservation: Reservation
    downgraded: bool  # the hold is the target's: the call runs the cheaper model
    due: BudgetLine | None  # the first budget past its downgrade share (when downgraded)
    due_used_nano: int


class BudgetExceeded(Exception):
    def __init__(self, line: BudgetLine, spent_nano: int, reserved_nano: int, amount: int) -> None:
        self.line = line
        self.spent_nano = spent_nano
        self.reserved_nano = reserved_nano
        self.amount_nano = amount
        super().__init__(
            f"{line.scope}'s {line.window} budget cannot hold this call: spent {spent_nano}, "
            f"reserved {reserved_nano}, call {amount}, budget {line.budget_nano} (nano-USD)"
        )


class Reservations:
    def __init__(self, redis: Redis, replication: Replication = NO_REPLICAS) -> None:
        """`replication`: replicas that must confirm a reservation before it is answered."""
        self.redis = redis
        self.replication = replication
        # Concurrent reservations (a worker's attempts, the API's requests) share round trips.
        self._reserve = AcceptingScript(redis, _RESERVE, replication)
        self._sweep = redis.register_script(_SWEEP)
        self._release = redis.register_script(_RELEASE)
        self._check_and_reserve = AcceptingScript(redis, _CHECK_AND_RESERVE, replication)

    async def check_and_reserve(
        self, call: CallMaximum, now: dt.datetime, timeout_s: int, window_ms: int
    ) -> Checked:
        """The downgrade decision, the hourly limits (limits.py, held for `timeout_s`) and the
        budgets in one script: one round trip, and no moment where the call is admitted by the
        limits but refused by a budget. Raises RateLimited, LimitTooSmall or BudgetExceeded,
        having held nothing."""
        now_ms = int(now.timestamp() * 1000)
        expires = now + dt.timedelta(seconds=timeout_s)
        windows = keys.buckets(now)
        lines = call.lines
        redis_keys = [
            *_STATE,
            *(keys.usage(line.window, windows[line.window]) for line in lines),
            *scope_keys([lim.scope for lim in call.limits]),
        ]
        args: list[str | int] = [
            now_ms,
            int(expires.timestamp() * 1000),
            window_ms,
            timeout_s * 1000,
            call.reservation_id,
            str(call.tokens),
            call.team,
            str(call.amount_nano),
            "" if call.target_nano is None else str(call.target_nano),
            len(lines),
        ]
        for line in lines:
            args += [line.scope, keys.ledger_field(line.scope), str(line.budget_nano)]
        args += [*call.thresholds, *limit_args(call.limits)]
        raw = await self._check_and_reserve(redis_keys, args)
        status, expired, downgraded = int(raw[0]), int(raw[1]), int(raw[2]) == 2
        amount = call.target_nano if downgraded and call.target_nano is not None else None
        amount = call.amount_nano if amount is None else amount
        if status == 3:
            raise refusal([int(v) for v in raw[5:]], call.limits, call.tokens, amount)
        if status == 0:
            raise BudgetExceeded(lines[int(raw[5]) - 1], int(raw[6]), int(raw[7]), amount)
        held = int(raw[5]) if status == 2 else amount
        reservation = Reservation(
            call.reservation_id, call.team, held, expires, status == 1, expired
        )
        due = lines[int(raw[3]) - 1] if downgraded else None
        return Checked(reservation, downgraded, due, int(raw[4]))

    async def reserve(
        self,
        reservation_id: str,
        team: str,
        amount_nano: int,
        lines: Sequence[BudgetLine],
        now: dt.datetime,
        timeout_s: int,
    ) -> Reservation:
        """Hold `amount_nano` for `timeout_s` unless a budget would be passed (BudgetExceeded)."""
        if amount_nano < 0:
            raise ValueError("a reservation cannot be negative")
        now_ms = int(now.timestamp() * 1000)
        expires = now + dt.timedelta(seconds=timeout_s)
        windows = keys.buckets(now)
        redis_keys = [*_STATE, *(keys.usage(line.window, windows[line.window]) for line in lines)]
        args: list[str | int] = [
            now_ms,
            int(expires.timestamp() * 1000),
            reservation_id,
            str(amount_nano),
            team,
        ]
        for line in lines:
            args += [line.scope, keys.ledger_field(line.scope), str(line.budget_nano)]
        raw = await self._reserve(redis_keys, args)
        status, expired = int(raw[0]), int(raw[1])
        if status == 0:
            raise BudgetExceeded(lines[int(raw[2]) - 1], int(raw[3]), int(raw[4]), amount_nano)
        amount = int(raw[2]) if status == 2 else amount_nano
        return Reservation(reservation_id, team, amount, expires, status == 1, expired)

    async def release(self, reservation_id: str) -> bool:
        """Give back a reservation whose call did not happen; False if none is held."""
        return bool(await self._release(keys=_STATE, args=[reservation_id]))

    async def sweep(self, now: dt.datetime) -> int:
        """Release every reservation whose timeout has passed; how many were."""
        return int(await self._sweep(keys=_STATE, args=[int(now.timestamp() * 1000)]))

    async def reserved(self, scope: str) -> int:
        return int(await reply(self.redis.hget(keys.RESERVED, scope)) or 0)

    async def held(self, reservation_id: str) -> int | None:
        value = await reply(self.redis.hget(keys.RESERVATIONS, reservation_id))
        if value is None:
            return None
        return int(text(value).split("|", 1)[0])
