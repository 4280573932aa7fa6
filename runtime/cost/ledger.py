"""The usage ledger in Redis: every call recorded once, totals per model / agent type / team
for hour, day and month windows, and a daily series.

Money is stored as integer nano-dollars (1e-9 USD): exact for every price quoted per million
tokens with up to three decimals, summed with atomic HINCRBY. A cost that does not fit that
resolution is refused rather than rounded.

Recording a call also settles the check-and-reserve made for it (same idempotency key), in the
same script: the spend moves from "reserved" to "spent" without a moment where it counts twice
or not at all, and the hourly limits' hold of the call's maximum becomes its actual tokens and
cost (limits.py), the rest returning at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from redis.asyncio import Redis

from runtime.cost import keys
from runtime.cost.limits import LUA_LIMITS, WINDOW_S, scope_keys
from runtime.cost.money import NANO, from_nano, to_nano
from runtime.service.redis import (
    NO_REPLICAS,
    AcceptingScript,
    Replication,
    decoded,
    reply,
    run_script_batch,
)

__all__ = [
    "NANO",
    "Ledger",
    "Recorded",
    "UsageRecord",
    "WindowTotals",
    "from_nano",
    "idempotency_key",
    "to_nano",
]

# Replays arrive within minutes; keep the marks well past the longest window (a month).
_SEEN_TTL_S = 40 * 24 * 3600
# Hour buckets are only read for the current hour; day and month buckets feed reports.
_TTL_S = {"hour": 3 * 24 * 3600, "day": 400 * 24 * 3600, "month": 800 * 24 * 3600}

# KEYS: seen, hour, day, month, reserved, reservation expiry, reservations, then four per
# limited scope (limits.scope_keys). ARGV: seen ttl, reservation id, team field, hour ttl, day
# ttl, month ttl, now ms, limit window ms, tokens, nano, then field/amount pairs. Amounts stay
# strings: Lua numbers print large integers as 1.5e+13, which HINCRBY refuses.
_RECORD = (
    LUA_LIMITS
    + """
-- The day's and the month's spend, platform and team: what the budget checks need.
local function totals()
  local day = redis.call('HMGET', KEYS[3], 'cost:total', ARGV[3])
  local month = redis.call('HMGET', KEYS[4], 'cost:total', ARGV[3])
  return {day[1] or '0', day[2] or '0', month[1] or '0', month[2] or '0'}
end
local settled = 0
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then
  return {0, 0, unpack(totals())}
end
for b = 2, 4 do
  for i = 11, #ARGV, 2 do
    redis.call('HINCRBY', KEYS[b], ARGV[i], ARGV[i + 1])
  end
  redis.call('EXPIRE', KEYS[b], ARGV[2 + b])
end
local held = redis.call('HGET', KEYS[7], ARGV[2])
if held then
  local amount, team = string.match(held, '^(%d+)|(.*)$')
  redis.call('HINCRBY', KEYS[5], 'platform', neg(amount))
  redis.call('HINCRBY', KEYS[5], 'team:' .. team, neg(amount))
  redis.call('HDEL', KEYS[7], ARGV[2])
  redis.call('ZREM', KEYS[6], ARGV[2])
  settled = 1
end
-- The hourly limits count what the call really used from now on, in the same step.
for base = 7, #KEYS - 1, 4 do
  settle(base, tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[2], ARGV[9], ARGV[10])
end
return {1, settled, unpack(totals())}
"""
)


def idempotency_key(task_id: str, attempt: int, call: int = 1) -> str:
    """One model call of one task attempt: a retried report of it is the same call. The first
    call's key is the attempt's (`<task>:<attempt>`); a tool loop's further calls add their
    number (`<task>:<attempt>:<call>`), each reserved and recorded under its own key."""
    return f"{task_id}:{attempt}" if call == 1 else f"{task_id}:{attempt}:{call}"


@dataclass(frozen=True)
class UsageRecord:
    idempotency_key: str  # task id + attempt (+ call): a retried report of a call is one call
    model: str
    agent_type: str
    team: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    at: dt.datetime

    def __post_init__(self) -> None:
        if self.input_tokens < 0 or self.output_tokens < 0:
            raise ValueError("token counts cannot be negative")
        if self.cost_usd < 0:
            raise ValueError("cost cannot be negative")
        if self.at.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")


@dataclass(frozen=True)
class Recorded:
    """What one record did, and the spend it left (nano-dollars) for the budget checks."""

    recorded: bool  # False: this idempotency key was recorded before; nothing changed
    settled_reservation: bool
    day_total: int
    day_team: int
    month_total: int
    month_team: int


@dataclass
class WindowTotals:
    cost_usd: Decimal = Decimal(0)
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    by_model: dict[str, Decimal] = field(default_factory=dict)
    by_agent_type: dict[str, Decimal] = field(default_factory=dict)
    by_team: dict[str, Decimal] = field(default_factory=dict)
    # model → (input tokens, output tokens): lets a report re-price a model's usage
    tokens_by_model: dict[str, tuple[int, int]] = field(default_factory=dict)


class Ledger:
    def __init__(self, redis: Redis, replication: Replication = NO_REPLICAS) -> None:
        """`replication`: replicas that must confirm a record before it is answered."""
        self.redis = redis
        self.replication = replication
        # Concurrent records (a worker's attempts, the API's requests) share round trips.
        self._accept = AcceptingScript(redis, _RECORD, replication)
        self._record = self._accept.script

    def script_call(
        self, usage: UsageRecord, limit_scopes: Sequence[str] = (), now_ms: int | None = None
    ) -> tuple[list[str], list[str | int]]:
        """The record script's KEYS and ARGV for one call (also what the benchmark replays).

        `limit_scopes`: the limited scopes whose hourly window the call is settled in, at
        `now_ms` (default: the record's `at`).
        """
        nano = to_nano(usage.cost_usd)
        team_field = keys.ledger_field(keys.team_scope(usage.team))
        increments: dict[str, int] = {
            "cost:total": nano,
            "calls:total": 1,
            "in:total": usage.input_tokens,
            "out:total": usage.output_tokens,
            f"cost:model:{usage.model}": nano,
            f"calls:model:{usage.model}": 1,
            f"in:model:{usage.model}": usage.input_tokens,
            f"out:model:{usage.model}": usage.output_tokens,
            f"cost:type:{usage.agent_type}": nano,
            team_field: nano,
            f"calls:team:{usage.team}": 1,
            f"in:team:{usage.team}": usage.input_tokens,
            f"out:team:{usage.team}": usage.output_tokens,
        }
        windows = keys.buckets(usage.at)
        redis_keys = [
            keys.seen(usage.idempotency_key),
            *(keys.usage(w, windows[w]) for w in ("hour", "day", "month")),
            keys.RESERVED,
            keys.RESERVATION_EXPIRY,
            keys.RESERVATIONS,
            *scope_keys(limit_scopes),
        ]
        args: list[str | int] = [
            _SEEN_TTL_S,
            usage.idempotency_key,
            team_field,
            _TTL_S["hour"],
            _TTL_S["day"],
            _TTL_S["month"],
            int(usage.at.timestamp() * 1000) if now_ms is None else now_ms,
            WINDOW_S * 1000,
            str(usage.input_tokens + usage.output_tokens),
            str(nano),
        ]
        for name, amount in increments.items():
            args += [name, str(amount)]
        return redis_keys, args

    async def record(
        self, usage: UsageRecord, limit_scopes: Sequence[str] = (), now_ms: int | None = None
    ) -> Recorded:
        """Add one call to every window and settle its reservation and its hourly-limit hold
        to the actual amount, once per idempotency key."""
        redis_keys, args = self.script_call(usage, limit_scopes, now_ms)
        return _recorded(await self._accept(redis_keys, args))

    async def record_many(self, usages: Sequence[UsageRecord]) -> list[Recorded]:
        """Record a batch in one round trip (pipelined); each record stays atomic on its own."""
        calls = [self.script_call(usage) for usage in usages]
        return [_recorded(raw) for raw in await run_script_batch(self.redis, self._record, calls)]

    async def totals(self, window: str, at: dt.datetime) -> WindowTotals:
        raw = await reply(self.redis.hgetall(keys.usage(window, keys.buckets(at)[window])))
        return _totals({k: int(v) for k, v in decoded(raw).items()})

    async def spent(self, scope: str, window: str, at: dt.datetime) -> int:
        """Nano-dollars a scope ("platform" or "team:<name>") spent in a window."""
        value = await reply(
            self.redis.hget(keys.usage(window, keys.buckets(at)[window]), keys.ledger_field(scope))
        )
        return int(value or 0)

    async def daily_series(
        self, first: dt.date, last: dt.date, scope: str = keys.PLATFORM
    ) -> list[tuple[dt.date, Decimal]]:
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        pipe = self.redis.pipeline(transaction=False)
        for day in days:
            pipe.hget(keys.usage("day", day.isoformat()), keys.ledger_field(scope))
        values = await pipe.execute()
        return [(day, from_nano(int(v or 0))) for day, v in zip(days, values, strict=True)]


def _recorded(raw: Sequence[int | bytes | None]) -> Recorded:
    flag, settled, *totals = (int(v or 0) for v in raw)
    return Recorded(bool(flag), bool(settled), *totals)


def _totals(raw: Mapping[str, int]) -> WindowTotals:
    t = WindowTotals(
        cost_usd=from_nano(raw.get("cost:total", 0)),
        calls=raw.get("calls:total", 0),
        input_tokens=raw.get("in:total", 0),
        output_tokens=raw.get("out:total", 0),
    )
    for name, value in raw.items():
        for prefix, target in (
            ("cost:model:", t.by_model),
            ("cost:type:", t.by_agent_type),
            ("cost:team:", t.by_team),
        ):
            if name.startswith(prefix):
                target[name[len(prefix) :]] = from_nano(value)
    for model in t.by_model:
        t.tokens_by_model[model] = (
            raw.get(f"in:model:{model}", 0),
            raw.get(f"out:model:{model}", 0),
        )
    return t
