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
from runtime.service.redis import NO_REPLICAS, Replication, replicated, reply, text

__all__ = ["BudgetExceeded", "Reservation", "Reservations"]

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

# KEYS: reserved, expiry, reservations, then the ledger hash of each budget line.
# ARGV: now ms, expires ms, id, nano amount, team, then per budget line: scope, ledger field,
# budget nano. Returns {1, expired} held, {2, expired, amount} already held under this id,
# {0, expired, line index, spent, reserved} refused. Sums stay below 2^53 nano-dollars (9e6 USD),
# where Lua's doubles are exact.
_RESERVE = (
    _RELEASE_EXPIRED
    + """
local expired = release_expired(tonumber(ARGV[1]))
local existing = redis.call('HGET', KEYS[3], ARGV[3])
if existing then
  return {2, expired, string.match(existing, '^(%d+)|')}
end
local amount = tonumber(ARGV[4])
local lines = (#ARGV - 5) / 3
for i = 1, lines do
  local scope, field, budget = ARGV[3 + 3 * i], ARGV[4 + 3 * i], tonumber(ARGV[5 + 3 * i])
  local spent = redis.call('HGET', KEYS[3 + i], field) or '0'
  local reserved = redis.call('HGET', KEYS[1], scope) or '0'
  if tonumber(spent) + tonumber(reserved) + amount > budget then
    return {0, expired, i, spent, reserved}
  end
end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4] .. '|' .. ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'platform', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'team:' .. ARGV[5], ARGV[4])
return {1, expired}
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
        self._reserve = redis.register_script(_RESERVE)
        self._sweep = redis.register_script(_SWEEP)
        self._release = redis.register_script(_RELEASE)

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
        raw = await replicated(self.redis, self._reserve, redis_keys, args, self.replication)
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
