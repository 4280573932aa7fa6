"""Cost: spend against the budgets the cost engine enforces.

Warning from the stack's `cost.downgradeAt` share (where the engine starts downgrading
models), critical once a budget is spent (the engine refuses work beyond it).
"""

from __future__ import annotations

from decimal import Decimal

from ops.diagnostics.check import Check, Status
from ops.diagnostics.rules.common import RUNBOOK
from ops.diagnostics.thresholds import Bounds, at_or_above

__all__ = ["BUDGET_SPENT", "budget_check", "budget_config_check", "projection_check"]

# A budget is spent when spend reaches it: the definition of a budget, not a tunable.
BUDGET_SPENT = 1.0


def _usd(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'))} USD"


def budget_check(window: str, spent: Decimal, budget: Decimal, downgrade_at: float) -> Check:
    """`window`: "month" (month to date) or "day" (today)."""
    bounds = Bounds(downgrade_at, BUDGET_SPENT)
    name = f"cost.{window}"
    threshold = f"spend/budget < {downgrade_at:.0%} (critical ≥ {BUDGET_SPENT:.0%})"
    if budget <= 0:
        return Check(
            name=name,
            status=Status.CRITICAL,
            value=None,
            threshold=threshold,
            detail=f"the cost engine reports no {window} budget ({budget})",
            advice="Roll out the stack's cost config to the cost engine (AGENTOPS_COST_CONFIG).",
        )
    share = spent / budget
    status = at_or_above(float(share), bounds)
    advice = {
        Status.HEALTHY: None,
        Status.WARNING: "Models are being downgraded: review the spend (`agentops cost report`) "
        "and pause non-urgent work.",
        Status.CRITICAL: f"The {window}'s budget is spent: the cost engine refuses or downgrades "
        "work. Stop the spending workload or raise the budget in the stack config; "
        f"see {RUNBOOK} (budget playbooks).",
    }[status]
    return Check(
        name=name,
        status=status,
        value=round(float(share), 4),
        threshold=threshold,
        detail=f"{_usd(spent)} of {_usd(budget)}",
        advice=advice,
    )


def projection_check(projected: Decimal, budget: Decimal) -> Check:
    over = budget > 0 and projected > budget
    return Check(
        name="cost.projection",
        status=Status.WARNING if over else Status.HEALTHY,
        value=float(projected.quantize(Decimal("0.01"))),
        threshold=f"projected month end ≤ monthly budget ({_usd(budget)})",
        detail="month-end spend at the current trend",
        advice="At this trend the month's budget runs out before month end: see "
        "`agentops cost report` for the suggestions."
        if over
        else None,
    )


def budget_config_check(engine_usd: Decimal, stack_usd: Decimal) -> Check:
    same = engine_usd == stack_usd
    return Check(
        name="cost.budget_config",
        status=Status.HEALTHY if same else Status.WARNING,
        value=float(engine_usd),
        threshold=f"the engine's monthly budget = the stack's ({_usd(stack_usd)})",
        detail="" if same else "the cost engine enforces another budget than the stack declares",
        advice=None
        if same
        else "Roll out the current stack (`pulumi up`) so the engine gets its cost config.",
    )
