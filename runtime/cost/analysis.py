"""Spend analysis, pure: totals, trend, projection, burn rate and the seed's suggestions.

Inputs are recorded figures (the ledger's daily series and month totals); derived figures are
computed exactly with fractions and rounded once, to the ledger's nano-dollar, at the end.

- trend: least-squares slope of the last `TREND_DAYS` daily figures (USD per day); zero with
  fewer days than that, as in the seed.
- month-end projection: month-to-date spend plus the fitted line extended over the days left in
  the month (never below zero per day).
- burn rate: month-to-date spend / monthly budget.
- suggestions: substitution when one model takes more than 40 % of the month's spend, a rising
  trend, and more than 80 % of the monthly budget spent.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

__all__ = [
    "SUBSTITUTION_SHARE",
    "TREND_DAYS",
    "WARNING_SHARE",
    "ModelSpend",
    "SpendAnalysis",
    "Suggestion",
    "analyse",
    "least_squares",
]

TREND_DAYS = 7
SUBSTITUTION_SHARE = Fraction(2, 5)
WARNING_SHARE = Fraction(4, 5)
_NANO = Decimal("0.000000001")


@dataclass(frozen=True)
class ModelSpend:
    cost_usd: Decimal
    # What the same tokens would have cost on the model's downgrade target; None: no target.
    substitute: str | None = None
    substitute_cost_usd: Decimal | None = None


@dataclass(frozen=True)
class Suggestion:
    kind: str  # model_substitution | spending_trend | budget_warning
    priority: str  # high | medium | critical
    description: str
    action: str
    potential_savings_usd: Decimal | None


@dataclass(frozen=True)
class SpendAnalysis:
    as_of: dt.date
    series: list[tuple[dt.date, Decimal]]
    total_usd: Decimal
    daily_average_usd: Decimal
    trend_usd_per_day: Decimal
    month_to_date_usd: Decimal
    projected_month_end_usd: Decimal
    monthly_budget_usd: Decimal
    burn_rate: Decimal  # month to date / monthly budget
    by_model: dict[str, Decimal]
    suggestions: list[Suggestion]


def _usd(value: Fraction) -> Decimal:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact.quantize(_NANO, rounding=ROUND_HALF_EVEN)


def least_squares(values: Sequence[Decimal]) -> tuple[Fraction, Fraction]:
    """Intercept and slope of the line fitted to values at x = 0, 1, 2, ...; exact."""
    n = len(values)
    if n < 2:
        raise ValueError("a trend needs at least two points")
    ys = [Fraction(v) for v in values]
    x_mean = Fraction(n - 1, 2)
    y_mean = sum(ys, Fraction(0)) / n
    sxx = sum(((x - x_mean) ** 2 for x in range(n)), Fraction(0))
    sxy = sum(((x - x_mean) * (y - y_mean) for x, y in enumerate(ys)), Fraction(0))
    slope = sxy / sxx
    return y_mean - slope * x_mean, slope


@dataclass(frozen=True)
class _Trend:
    """The line fitted to the last `TREND_DAYS` days (flat at the average with fewer), and
    where the last fitted day sits on it."""

    intercept: Fraction
    slope: Fraction
    last_x: int

    @classmethod
    def fit(cls, values: Sequence[Decimal], average: Fraction) -> _Trend:
        if len(values) >= TREND_DAYS:
            intercept, slope = least_squares(values[-TREND_DAYS:])
            return cls(intercept, slope, TREND_DAYS - 1)
        return cls(average, Fraction(0), 0)

    def ahead(self, days: int) -> Fraction:
        """Spend over the next `days` days on the line, never below zero per day."""
        return sum(
            (
                max(Fraction(0), self.intercept + self.slope * (self.last_x + k))
                for k in range(1, days + 1)
            ),
            Fraction(0),
        )

    def rise(self, days: int) -> Fraction:
        """What the slope adds over `days` days above the last fitted day's level."""
        return sum((self.slope * k for k in range(1, days + 1)), Fraction(0))


def _days_left_in_month(day: dt.date) -> int:
    return calendar.monthrange(day.year, day.month)[1] - day.day


def _substitution(by_model: Mapping[str, ModelSpend]) -> Suggestion | None:
    """The model taking more than `SUBSTITUTION_SHARE` of the month, and its cheaper target."""
    month_total = sum((Fraction(s.cost_usd) for s in by_model.values()), Fraction(0))
    if month_total <= 0:
        return None
    top = max(sorted(by_model), key=lambda name: by_model[name].cost_usd)
    spend = by_model[top]
    share = Fraction(spend.cost_usd) / month_total
    if share <= SUBSTITUTION_SHARE:
        return None
    savings = None
    action = "route more of its tasks to a cheaper model"
    if (
        spend.substitute is not None
        and spend.substitute_cost_usd is not None
        and spend.substitute_cost_usd < spend.cost_usd
    ):
        # Only a substitute that would have cost less is named: never negative savings.
        savings = _usd(Fraction(spend.cost_usd) - Fraction(spend.substitute_cost_usd))
        action = f"route its tasks to {spend.substitute} where quality allows"
    return Suggestion(
        "model_substitution",
        "high",
        f"{top} takes {_usd(share * 100):.1f} % of this month's spend",
        action,
        savings,
    )


def _rising_trend(trend: _Trend, remaining: int) -> Suggestion | None:
    if trend.slope <= 0:
        return None
    return Suggestion(
        "spending_trend",
        "medium",
        f"spend rising by {_usd(trend.slope)} USD per day over the last {TREND_DAYS} days",
        "review usage growth per team and agent type",
        _usd(trend.rise(remaining)),
    )


def _budget_warning(burn: Fraction) -> Suggestion | None:
    if burn <= WARNING_SHARE:
        return None
    return Suggestion(
        "budget_warning",
        "critical",
        f"{_usd(burn * 100):.1f} % of the monthly budget spent",
        "downgrade models or pause non-urgent work",
        None,
    )


def analyse(
    series: Sequence[tuple[dt.date, Decimal]],
    month_to_date: Decimal,
    monthly_budget: Decimal,
    by_model: Mapping[str, ModelSpend],
) -> SpendAnalysis:
    """`series` is consecutive daily spend ending at the day of the analysis (inclusive)."""
    if not series:
        raise ValueError("the analysis needs at least one day")
    if monthly_budget <= 0:
        raise ValueError("the monthly budget must be positive")
    as_of = series[-1][0]
    values = [v for _, v in series]
    total = sum((Fraction(v) for v in values), Fraction(0))
    average = total / len(values)
    remaining = _days_left_in_month(as_of)
    trend = _Trend.fit(values, average)
    mtd = Fraction(month_to_date)
    burn = mtd / Fraction(monthly_budget)
    suggestions = [
        s
        for s in (_substitution(by_model), _rising_trend(trend, remaining), _budget_warning(burn))
        if s is not None
    ]
    return SpendAnalysis(
        as_of=as_of,
        series=list(series),
        total_usd=_usd(total),
        daily_average_usd=_usd(average),
        trend_usd_per_day=_usd(trend.slope),
        month_to_date_usd=month_to_date,
        projected_month_end_usd=_usd(mtd + trend.ahead(remaining)),
        monthly_budget_usd=monthly_budget,
        burn_rate=_usd(burn),
        by_model={name: by_model[name].cost_usd for name in sorted(by_model)},
        suggestions=suggestions,
    )
