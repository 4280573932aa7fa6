"""Budget maths, pure: which budgets a call is held to, which thresholds spend has crossed,
when a window ends, and when models are downgraded. No I/O; amounts are nano-dollars.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from contracts.config.cost import BudgetConfig, CostConfig
from runtime.cost import keys
from runtime.cost.ledger import to_nano

__all__ = [
    "WINDOWS",
    "BudgetLine",
    "all_budget_lines",
    "budget_lines",
    "crossed",
    "downgrade_target",
    "over_share",
    "share_threshold",
    "threshold_label",
    "window_end",
]

WINDOWS = ("day", "month")


@dataclass(frozen=True)
class BudgetLine:
    """One budget: a scope ("platform" or "team:<name>") over a window (day or month)."""

    scope: str
    window: str
    budget_nano: int


def _lines(scope: str, budget: BudgetConfig) -> list[BudgetLine]:
    return [
        BudgetLine(scope, "day", to_nano(budget.daily_usd)),
        BudgetLine(scope, "month", to_nano(budget.monthly_usd)),
    ]


def budget_lines(cost: CostConfig, team: str | None) -> list[BudgetLine]:
    """The platform's budgets, then the team's if it has any; a team without one is only
    held to the platform's."""
    lines = _lines(keys.PLATFORM, cost.budget)
    if team is not None and team in cost.team_budgets:
        lines += _lines(keys.team_scope(team), cost.team_budgets[team])
    return lines


def all_budget_lines(cost: CostConfig) -> list[BudgetLine]:
    lines = _lines(keys.PLATFORM, cost.budget)
    for team, budget in sorted(cost.team_budgets.items()):
        lines += _lines(keys.team_scope(team), budget)
    return lines


@functools.lru_cache(maxsize=256)
def _share(value: float) -> Decimal:
    # Through str: 0.8 is the decimal 0.8 an operator wrote, not 0.8000000000000000444.
    return Decimal(str(value))


def threshold_label(share: float) -> str:
    """The `threshold` label of an alert, as the alert catalogue writes it (str of the share)."""
    return str(share)


def crossed(spent_nano: int, budget_nano: int, thresholds: Sequence[float]) -> list[float]:
    """Thresholds reached: spent ≥ share × budget, compared exactly."""
    if budget_nano <= 0:
        return []
    return [t for t in thresholds if spent_nano >= share_threshold(budget_nano, t)]


def over_share(used_nano: int, budget_nano: int, share: float) -> bool:
    return budget_nano > 0 and used_nano >= share_threshold(budget_nano, share)


@functools.lru_cache(maxsize=1024)
def share_threshold(budget_nano: int, share: float) -> int:
    """The least whole nano-dollars `used` with used ≥ share × budget, exactly (so, for whole
    amounts, reaching it is reaching the share); -1: none (a budget of 0 is never over its
    share). What the check-and-reserve script compares; kept per budget and share."""
    if budget_nano <= 0:
        return -1
    return int((_share(share) * budget_nano).to_integral_value(rounding=ROUND_CEILING))


def window_end(window: str, at: dt.datetime) -> dt.datetime:
    """The first moment (UTC) after the day or month `at` falls in."""
    utc = at.astimezone(dt.UTC)
    day = dt.datetime(utc.year, utc.month, utc.day, tzinfo=dt.UTC)
    if window == "day":
        return day + dt.timedelta(days=1)
    if window == "month":
        return dt.datetime(utc.year + utc.month // 12, utc.month % 12 + 1, 1, tzinfo=dt.UTC)
    raise ValueError(f"unknown budget window {window!r}")


def downgrade_target(model: str, downgrade: Mapping[str, str]) -> str | None:
    """The next cheaper model along the configured map, or None when there is none."""
    return downgrade.get(model)
