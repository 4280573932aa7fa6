"""Budget threshold alerts fired exactly once per threshold, scope and window, in Redis.

Whichever engine replica first sees spend cross a threshold sets its mark (SET NX, kept until
after the window ends) and appends the event to a stream in the same script; every other
replica, and the same one after a restart, finds the mark and stays quiet. The caller turns
what this returns into a metric increment and a log line. Prometheus' own budget-burn rules
(contracts/telemetry/alerts.py) page through Alertmanager from the exported gauges.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from redis.asyncio import Redis

from runtime.cost import keys
from runtime.cost.budgets import BudgetLine, crossed, threshold_label, window_end
from runtime.cost.ledger import from_nano
from runtime.service.redis import decoded

__all__ = ["BudgetAlert", "BudgetAlerts"]

# Marks outlive their window by a margin: a late record for the old window must not re-fire.
_MARGIN = dt.timedelta(days=2)
_EVENTS_KEPT = 10_000

# KEYS: mark per candidate, then the events stream. ARGV: stream cap, then per candidate:
# ttl seconds and the event's fields as one JSON text. Returns the indexes newly marked.
_FIRE = """
local fired = {}
local n = #KEYS - 1
for i = 1, n do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[2 * i]) then
    redis.call('XADD', KEYS[n + 1], 'MAXLEN', '~', ARGV[1], '*', 'alert', ARGV[2 * i + 1])
    table.insert(fired, i)
  end
end
return fired
"""


def _plain(usd: Decimal) -> str:
    return format(usd.normalize(), "f")


@dataclass(frozen=True)
class BudgetAlert:
    scope: str
    window: str
    bucket: str  # the day (2026-11-24) or month (2026-11) the budget belongs to
    threshold: float
    spent_nano: int
    budget_nano: int

    @property
    def threshold_label(self) -> str:
        return threshold_label(self.threshold)

    def as_event(self) -> dict[str, str]:
        return {
            "scope": self.scope,
            "window": self.window,
            "bucket": self.bucket,
            "threshold": self.threshold_label,
            "spent_usd": _plain(from_nano(self.spent_nano)),
            "budget_usd": _plain(from_nano(self.budget_nano)),
        }


class BudgetAlerts:
    def __init__(self, redis: Redis, thresholds: Sequence[float]) -> None:
        self.redis = redis
        self.thresholds = tuple(thresholds)
        self._fire = redis.register_script(_FIRE)
        # Marks this process already knows are set: spares Redis a call per record.
        self._known: set[str] = set()

    async def check(
        self, spent: Sequence[tuple[BudgetLine, int]], at: dt.datetime
    ) -> list[BudgetAlert]:
        """The alerts this call fired (each fires once, platform-wide, per window)."""
        windows = keys.buckets(at)
        candidates: list[tuple[str, BudgetAlert, int]] = []
        for line, spent_nano in spent:
            bucket = windows[line.window]
            for share in crossed(spent_nano, line.budget_nano, self.thresholds):
                mark = keys.alert_mark(line.scope, line.window, bucket, threshold_label(share))
                if mark in self._known:
                    continue
                alert = BudgetAlert(
                    line.scope, line.window, bucket, share, spent_nano, line.budget_nano
                )
                lasts = window_end(line.window, at) + _MARGIN - at
                candidates.append((mark, alert, max(1, int(lasts.total_seconds()))))
        if not candidates:
            return []
        args: list[str | int] = [_EVENTS_KEPT]
        for _, alert, ttl in candidates:
            args += [ttl, json.dumps(alert.as_event(), sort_keys=True)]
        fired = await self._fire(keys=[*(c[0] for c in candidates), keys.EVENTS], args=args)
        self._known.update(c[0] for c in candidates)
        return [candidates[int(i) - 1][1] for i in fired]

    async def events(self, count: int = 1000) -> list[dict[str, str]]:
        """The most recent alerts fired, oldest first."""
        entries = await self.redis.xrevrange(keys.EVENTS, count=count)
        return [json.loads(decoded(fields)["alert"]) for _, fields in reversed(entries)]
