"""Spend analysis against a hand-computed fixture of three weeks (figures worked out by hand
in the comments), plus the least-squares fit on its own."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest

from runtime.cost.analysis import ModelSpend, analyse, least_squares

NOV = [dt.date(2026, 11, d) for d in range(1, 22)]
# 14 days at 10 USD, then 7 days rising by 2 USD a day: 10, 12, ..., 22.
SPEND = [Decimal(10)] * 14 + [Decimal(10 + 2 * i) for i in range(7)]
SERIES = list(zip(NOV, SPEND, strict=True))


def test_least_squares_by_hand() -> None:
    # x̄ = 3, ȳ = 25/7, Σ(x−3)·y = −9 −2 −4 +0 +5 +18 +6 = 14, Σ(x−3)² = 28.
    intercept, slope = least_squares([Decimal(v) for v in (3, 1, 4, 1, 5, 9, 2)])
    assert slope == Fraction(1, 2)
    assert intercept == Fraction(25, 7) - Fraction(3, 2)
    with pytest.raises(ValueError, match="two points"):
        least_squares([Decimal(1)])


def test_three_weeks_by_hand() -> None:
    by_model = {
        "gpt-5": ModelSpend(Decimal(180), "gpt-4o", Decimal(60)),
        "gpt-4o": ModelSpend(Decimal(72)),
    }
    a = analyse(SERIES, Decimal(252), Decimal(300), by_model)
    assert a.as_of == dt.date(2026, 11, 21)
    assert a.total_usd == Decimal(252)  # 14 × 10 + (10 + 12 + … + 22 = 112)
    assert a.daily_average_usd == Decimal(12)  # 252 / 21
    assert a.trend_usd_per_day == Decimal(2)
    # 9 days left in November; the fitted line 10 + 2x continues at x = 7..15:
    # Σ (22 + 2k), k = 1..9 = 198 + 90 = 288, on top of the 252 spent.
    assert a.projected_month_end_usd == Decimal(540)
    assert a.burn_rate == Decimal("0.84")  # 252 / 300
    assert a.by_model == {"gpt-4o": Decimal(72), "gpt-5": Decimal(180)}
    kinds = {s.kind: s for s in a.suggestions}
    assert list(kinds) == ["model_substitution", "spending_trend", "budget_warning"]
    # gpt-5 is 180 / 252 = 71.4 % of the month; its tokens on gpt-4o would cost 60.
    assert kinds["model_substitution"].potential_savings_usd == Decimal(120)
    assert "gpt-5 takes 71.4 %" in kinds["model_substitution"].description
    assert "gpt-4o" in kinds["model_substitution"].action
    # The rise above the last fitted day's level by month end: Σ 2k, k = 1..9 = 90.
    assert kinds["spending_trend"].potential_savings_usd == Decimal(90)
    assert "84.0 %" in kinds["budget_warning"].description


@pytest.mark.parametrize("substitute_cost", [Decimal(180), Decimal(250)])
def test_a_substitute_that_costs_as_much_or_more_is_never_suggested(
    substitute_cost: Decimal,
) -> None:
    by_model = {"gpt-5": ModelSpend(Decimal(180), "gpt-4o", substitute_cost)}
    a = analyse(SERIES, Decimal(252), Decimal(300), by_model)
    [substitution] = [s for s in a.suggestions if s.kind == "model_substitution"]
    assert "gpt-4o" not in substitution.action
    assert substitution.potential_savings_usd is None


def test_flat_spend_under_budget_suggests_nothing() -> None:
    series = list(zip(NOV[:7], [Decimal(5)] * 7, strict=True))
    a = analyse(
        series,
        Decimal(35),
        Decimal(1000),
        {
            "gpt-5": ModelSpend(Decimal(20)),
            "gpt-4o": ModelSpend(Decimal(15)),
            "claude-3-5-sonnet": ModelSpend(Decimal(0)),
        },
    )
    assert a.trend_usd_per_day == 0
    # 23 days left at the fitted 5 USD a day.
    assert a.projected_month_end_usd == Decimal(35 + 23 * 5)
    # gpt-5 is 20 / 35 = 57 % > 40 %, but has no substitute configured here: no savings figure.
    assert [(s.kind, s.potential_savings_usd) for s in a.suggestions] == [
        ("model_substitution", None)
    ]


def test_short_history_has_no_trend_and_projects_the_average() -> None:
    series = [(dt.date(2026, 2, 26), Decimal("1.5")), (dt.date(2026, 2, 27), Decimal("2.5"))]
    a = analyse(series, Decimal(4), Decimal(100), {})
    assert a.trend_usd_per_day == 0
    assert a.daily_average_usd == 2
    assert a.projected_month_end_usd == Decimal(4 + 1 * 2)  # February 2026 has 28 days
    assert a.suggestions == []


def test_falling_spend_is_not_projected_below_zero() -> None:
    days = [dt.date(2026, 4, d) for d in range(1, 8)]
    values = [Decimal(v) for v in (12, 10, 8, 6, 4, 2, 0)]  # slope −2: zero from day 8 on
    a = analyse(list(zip(days, values, strict=True)), Decimal(42), Decimal(100), {})
    assert a.trend_usd_per_day == -2
    assert a.projected_month_end_usd == Decimal(42)
